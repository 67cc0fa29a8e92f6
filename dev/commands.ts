import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { existsSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import { MendError } from "../src/api/errors.js";
import { parseCount, parseName, parsePort } from "../src/cli/options.js";
import { editorUrlProblem } from "../src/server/dashboard.js";
import { isAlive, readHolder, WATCHER_HOLDER } from "./lock.js";
import { devRun, type DevRunOptions } from "./run.js";

function parseMs(text: string): number {
  const ms = Number(text);
  if (!/^\d+$/.test(text) || ms < 100 || ms > 3_600_000) throw new InvalidArgumentError("expected milliseconds, from 100 to 3600000.");
  return ms;
}

export function registerDevCommands(program: Command): void {
  const dev = program.command("dev").description("develop an application: rebuild on save, hot-swap code, retry failing tasks");

  dev
    .command("run")
    .description("build, serve and watch the application; on save, swap the new code in and retry failing tasks")
    .option("--application <path>", "the entry module, which default-exports an Application", "src/main.ts")
    .option("--name <name>", "keep state in <state-directory>/.mend/<name>/ across runs", parseName)
    .option("--watch <glob>", "also rebuild when files matching this glob change (repeatable)", (v: string, all: string[]) => [...all, v], [])
    .option("--port <port>", "the port; 0 picks a free one", parsePort, 9991)
    .option("--host <host>", "the address to bind; beyond loopback needs --admin-secret", "127.0.0.1")
    .option("--state-directory <dir>", "where .mend/ lives", ".")
    .option("--admin-secret <secret>", "required by the task endpoints (or MEND_ADMIN_SECRET)")
    .addOption(new Option("--reload <mode>", "swap new code into the running runtime, or restart it (slower; for comparison)").choices(["swap", "restart"]).default("swap"))
    .option("--editor-url <template>", "the dashboard's link of a stack frame: {file}, {line}, {column} (default vscode://file/{file}:{line}:{column})")
    .addOption(new Option("--effect-validation <mode>", "run each method twice to expose non-idempotent code").choices(["enabled", "quiet", "disabled"]).default("quiet"))
    .option("--concurrency <n>", "at most this many task attempts at once (default 256)", parseCount)
    .option("--hang-timeout <ms>", "a runtime that does not answer for this long is restarted, and the tasks it ran are parked", parseMs, 3000)
    .option("--typecheck", "run the app's TypeScript checker after each save and print its errors (the new code loads anyway)")
    .action(async (o: DevRunOptions) => {
      const editorProblem = o.editorUrl === undefined ? undefined : editorUrlProblem(o.editorUrl);
      if (editorProblem) throw new MendError("INVALID_ARGUMENT", editorProblem);
      if (!existsSync(resolve(o.application)))
        throw new MendError("NOT_FOUND", `No application at ${o.application}; pass --application PATH to the entry module.`);
      o.adminSecret ??= process.env.MEND_ADMIN_SECRET || undefined;
      process.exitCode = await devRun(o);
    });

  dev
    .command("expunge")
    .description("delete the state that `mend dev run --name NAME` keeps")
    .requiredOption("--name <name>", "the application's name", parseName)
    .option("--state-directory <dir>", "where .mend/ lives", ".")
    .option("--yes", "do not ask for confirmation")
    .action(async (o: { name: string; stateDirectory: string; yes?: boolean }) => {
      const directory = join(resolve(o.stateDirectory), ".mend", o.name);
      if (!existsSync(directory)) return void console.log(`No state for ${o.name} in ${directory}.`);
      // The watcher holds the state for its whole life (its runtime may be between two
      // restarts, with the store closed); the store's holder covers `mend serve`.
      for (const file of [WATCHER_HOLDER, "mend.sqlite.holder"]) {
        const path = join(directory, file);
        const h = readHolder(path);
        if (h.state === "held" && isAlive(h.holder.pid))
          throw new MendError("IN_USE", `The state of ${o.name} is in use by process ${h.holder.pid}; stop it first.`);
        if (h.state === "unreadable")
          throw new MendError(
            "HOLDER_UNREADABLE",
            `Cannot tell whether the state of ${o.name} is in use: ${path} ${h.why}. If no mend process uses it, delete that file and run expunge again.`,
          );
      }
      if (!o.yes) {
        if (!process.stdin.isTTY) throw new MendError("NOT_CONFIRMED", "Not deleting without confirmation: pass --yes.");
        const rl = createInterface({ input: process.stdin, output: process.stdout });
        const answer = await rl.question(`Delete every task and all state of ${o.name} in ${directory}? [y/N] `);
        rl.close();
        if (!/^y(es)?$/i.test(answer.trim())) return void console.log("Nothing deleted.");
      }
      rmSync(directory, { recursive: true, force: true });
      console.log(`Deleted the state of ${o.name}.`);
    });
}
