import Database from "better-sqlite3";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { ExternalContext } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import { copyFixture, mend } from "./helpers/cli.js";
import { DevRun } from "./helpers/dev.js";

const BUG = "const symbol = SYMBOLS[currency];";
const FIX = "const symbol = SYMBOLS[currency.toUpperCase()];";

function edit(file: string, from: string | RegExp, to: string): void {
  const text = readFileSync(file, "utf8");
  const next = text.replace(from, to);
  if (next === text) throw new Error(`nothing to replace in ${file}`);
  writeFileSync(file, next);
}

async function health(url: string): Promise<{ version: string; pid: number; rss: number }> {
  return (await fetch(`${url}/health`)).json() as Promise<{ version: string; pid: number; rss: number }>;
}

async function attempts(url: string, uuid: string): Promise<{ version: string; outcome: string; startedAt: number }[]> {
  const body = (await (await fetch(`${url}/v1/tasks/${uuid}`)).json()) as { attempts: { version: string; outcome: string; startedAt: number }[] };
  return body.attempts;
}

/** Starts `mend dev run` on a copy of the bank fixture, ready to serve v1. */
async function startBank(args: string[] = ["--name", "bank"]) {
  const app = copyFixture("bank");
  const dev = new DevRun(app, args);
  const url = await dev.url();
  await dev.until(/v1 ready in \d+ ms/);
  return { app, dev, url, ctx: new ExternalContext({ url }), format: join(app, "src/format.ts") };
}

describe("mend dev run", () => {
  test("a failing task with a 60 s backoff succeeds on the fix as soon as it is saved", async () => {
    const { dev, url, ctx, format } = await startBank();
    const { task } = await Account.ref("carol").spawn().statement(ctx);
    await dev.until(/✗ Account\('carol'\)\.statement \[[\w-]+\] failed on v1 \(attempt 1\): Error: Unknown currency 'usd' — retry in 60\.0 s/);
    // Printed with the stack mapped to the .ts source.
    await dev.until(/at formatBalance \(src\/format\.ts:5:\d+\)/);
    const savedAt = Date.now();
    edit(format, BUG, FIX);
    await dev.until(/v2 ready in \d+ ms \(src\/format\.ts\) — retrying 1 failing task/);
    await dev.until(/✓ Account\('carol'\)\.statement \[[\w-]+\] completed on v2 \(attempt 2\)/);
    expect(await task).toEqual({ text: "Monthly statement for carol. Balance: $0.00" });
    const history = await attempts(url, task.taskId.taskUuid);
    expect(history.map((a) => [a.version, a.outcome])).toEqual([["v1", "FAILED"], ["v2", "COMPLETED"]]);
    // Retried on the save, long before its 60 s backoff was over.
    expect(history[1]!.startedAt - savedAt).toBeLessThan(30_000);
    expect(await dev.stop()).toBe(130);
  });

  test("quiet effect validation says once at start that methods run twice, and nothing per method", async () => {
    const { dev, ctx } = await startBank();
    expect(await Account.ref("bob").deposit(ctx, { amount: 1 })).toEqual({ balance: 1 });
    const { task } = await Account.ref("bob").spawn().welcomeEmail(ctx);
    await task;
    await dev.until(/✓ Account\('bob'\)\.welcomeEmail \[[\w-]+\] completed on v1/);
    expect(dev.output.match(/effect validation runs readers, writers and transactions twice, the first run rolled back.*--effect-validation disabled turns it off\./g)).toHaveLength(1);
    expect(dev.output).not.toContain("effect validation: Ran");
  });

  test("quiet effect validation speaks when a method's two runs differ", async () => {
    const app = copyFixture("bank");
    const account = join(app, "src/account.ts");
    edit(account, "export const AccountServicer", "let calls = 0;\n\nexport const AccountServicer");
    edit(account, "state.balance += req.amount;", "state.balance += req.amount + (calls++ % 2);");
    const dev = new DevRun(app, ["--name", "bank"]);
    await dev.until(/v1 ready/);
    await Account.ref("bob").deposit(new ExternalContext({ url: await dev.url() }), { amount: 1 });
    await dev.until(/effect validation: Account\.deposit did not do the same thing on its two runs .*: .*balance/);
  });

  test("enabled effect validation prints every double run", async () => {
    const { dev, ctx } = await startBank(["--name", "bank", "--effect-validation", "enabled"]);
    await Account.ref("bob").deposit(ctx, { amount: 1 });
    await dev.until(/effect validation: Ran Account\.deposit twice/);
    expect(dev.output).not.toContain("turns it off");
  });

  test("on a port it picked, it prints the export line for the task CLI", async () => {
    const { dev, url } = await startBank();
    expect(dev.output).toContain(`\nexport MEND_APPLICATION_URL=${url}\n`);
  });

  test("code versions are numbered per store across runs; a rejected build uses no number", async () => {
    const app = copyFixture("bank");
    const first = new DevRun(app, ["--name", "bank"]);
    await first.until(/v1 ready in \d+ ms\n/);
    edit(format(app), BUG, FIX);
    await first.until(/v2 ready in \d+ ms \(src\/format\.ts\)/);
    edit(format(app), /^/, `throw new Error("broken at load");\n`);
    await first.until(/Build rejected \(src\/format\.ts\)/);
    expect(await first.stop()).toBe(130);

    const second = new DevRun(app, ["--name", "bank"]);
    await second.until(/Build rejected: The application threw while loading[\s\S]*Waiting for a save that fixes it\./);
    edit(format(app), `throw new Error("broken at load");\n`, "");
    await second.until(/v3 ready in \d+ ms \(src\/format\.ts\)/);
    expect((await health(await second.url())).version).toBe("v3");
    expect(await second.stop()).toBe(130);

    const db = new Database(join(app, ".mend/bank/mend.sqlite"), { readonly: true });
    const rows = db.prepare("SELECT number, changed, build_ms, load_ms, loaded_at FROM versions ORDER BY number").all() as {
      number: number; changed: string; build_ms: number; load_ms: number; loaded_at: number;
    }[];
    db.close();
    expect(rows.map((r) => [r.number, JSON.parse(r.changed)])).toEqual([[1, []], [2, ["src/format.ts"]], [3, ["src/format.ts"]]]);
    for (const r of rows) {
      expect(r.build_ms).toBeGreaterThan(0);
      expect(r.load_ms).toBeGreaterThan(0);
      expect(Math.abs(r.loaded_at - Date.now())).toBeLessThan(120_000);
    }
  });

  test("SIGTERM and SIGHUP stop it cleanly, without speaking of Ctrl+C, and remove what it made", async () => {
    for (const [signal, code] of [["SIGTERM", 143], ["SIGHUP", 129]] as const) {
      const app = copyFixture("bank");
      const dev = new DevRun(app);
      const [, dir] = await dev.until(/no --name, so state goes to (\S+) and is deleted on exit/);
      await dev.until(/v1 ready/);
      dev.child.kill(signal);
      expect((await dev.child).exitCode).toBe(code);
      expect(dev.output).toContain(`mend: stopping (${signal})`);
      expect(dev.output).not.toContain("Ctrl+C");
      expect(existsSync(dir!)).toBe(false);
    }
  });

  test("a dev run that cannot take its port fails at once and creates no store", async () => {
    const app = copyFixture("bank");
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const dev = new DevRun(app, ["--name", "bank", "--port", String(port)]);
      await dev.until(new RegExp(`mend: Port ${port} on 127\\.0\\.0\\.1 is in use; pick another with --port`));
      expect((await dev.child).exitCode).toBe(1);
      expect(existsSync(join(app, ".mend"))).toBe(false);
    } finally {
      taken.close();
    }
  });

  test("--host beyond loopback works with MEND_ADMIN_SECRET or --admin-secret", async () => {
    for (const [args, env] of [[[], { MEND_ADMIN_SECRET: "s3cr3t-env" }], [["--admin-secret", "s3cr3t-flag"], {}]] as const) {
      const app = copyFixture("bank");
      const dev = new DevRun(app, ["--name", "bank", "--host", "0.0.0.0", ...args], env);
      await dev.until(/v1 ready/);
      const url = (await dev.url()).replace("0.0.0.0", "127.0.0.1");
      const secret = env.MEND_ADMIN_SECRET ?? args[1];
      expect((await fetch(`${url}/v1/tasks`)).status).toBe(401);
      expect((await fetch(`${url}/v1/tasks`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
      expect(dev.output).not.toContain(secret);
      expect(await dev.stop()).toBe(130);
    }
  });

  test("a syntax error keeps the old version serving; the next good save loads", async () => {
    const { dev, ctx, format } = await startBank();
    edit(format, BUG, "const symbol = SYMBOLS[currency;");
    const [message] = await dev.until(/Build failed:[\s\S]*?keeps serving; fix it and save\./);
    expect(message).toContain('[ERROR] Expected "]" but found ";"');
    expect(message).toMatch(/src\/format\.ts:4:\d+:/);
    expect(message).toMatch(/4 │ +const symbol = SYMBOLS\[currency;/);
    expect(message).toContain("v1 keeps serving");
    expect(await Account.ref("a").deposit(ctx, { amount: 2 })).toEqual({ balance: 2 });
    edit(format, "const symbol = SYMBOLS[currency;", FIX);
    await dev.until(/v2 ready in \d+ ms \(src\/format\.ts\)/);
    expect(await Account.ref("a").preview(ctx)).toEqual({ text: "Balance: $2.00" });
  });

  test("a first build that fails waits for a save, then loads", async () => {
    const app = copyFixture("bank");
    const format = join(app, "src/format.ts");
    edit(format, BUG, "const symbol = SYMBOLS[currency;");
    const dev = new DevRun(app, ["--name", "bank"]);
    await dev.until(/Build failed:[\s\S]*Waiting for a save that fixes it\./);
    edit(format, "const symbol = SYMBOLS[currency;", FIX);
    await dev.until(/v1 ready in \d+ ms \(src\/format\.ts\)/);
    const ctx = new ExternalContext({ url: await dev.url() });
    expect(await Account.ref("a").preview(ctx)).toEqual({ text: "Balance: $0.00" });
  });

  test("a module that throws while loading is rejected and the old version keeps serving", async () => {
    const { dev, ctx, url, format } = await startBank();
    const THROWS = `throw new Error("broken at load");\n`;
    edit(format, /^/, THROWS);
    await dev.until(/Build rejected \(src\/format\.ts\): The application threw while loading: Error: broken at load[\s\S]*?v1 keeps serving\./);
    expect((await health(url)).version).toBe("v1");
    expect(await Account.ref("a").deposit(ctx, { amount: 1 })).toEqual({ balance: 1 });
    edit(format, THROWS, "");
    // A rejected build does not use up a number.
    await dev.until(/v2 ready in \d+ ms \(src\/format\.ts\)/);
    expect((await health(url)).version).toBe("v2");
    expect(dev.output).not.toMatch(/v3|v2 rejected/);
  });

  test.each([
    ["killed with SIGKILL", "", "was killed by SIGKILL"],
    ["exiting by itself", "process.exit(3);", "exited with code 3"],
    ["stuck in a synchronous loop", "while (true) {}", "stopped answering for 3 s"],
  ])("the runtime %s is restarted and the task completes after the fix", async (_what, crash, reason) => {
    const { dev, url, ctx, format } = await startBank();
    const before = (await health(url)).pid;
    if (crash) edit(format, BUG, `if (currency === "usd") { ${crash} }\n  ${BUG}`);
    if (crash) await dev.until(/v2 ready/);
    const { task } = await Account.ref("carol").spawn().statement(ctx);
    if (!crash) process.kill(before, "SIGKILL");
    await dev.until(new RegExp(`the runtime ${reason}.*; restarting it on v\\d`));
    const fixed = crash ? `if (currency === "usd") { ${crash} }\n  ${BUG}` : BUG;
    edit(format, fixed, FIX);
    await dev.until(/✓ Account\('carol'\)\.statement \[[\w-]+\] completed on v\d/, 30_000);
    expect(await task).toEqual({ text: "Monthly statement for carol. Balance: $0.00" });
    expect((await health(url)).pid).not.toBe(before);
  }, 60_000);

  test("a task whose method was renamed waits with a clear error and runs once the method is back", async () => {
    const { app, dev, ctx, url } = await startBank();
    const api = join(app, "src/api.ts");
    const account = join(app, "src/account.ts");
    edit(format(app), BUG, FIX);
    await dev.until(/v2 ready/);
    const { task } = await Account.ref("dora").spawn({ when: { secs: 1 } }).statement(ctx);
    edit(api, "      statement: {", "      monthlyStatement: {");
    edit(account, "async statement(ctx)", "async monthlyStatement(ctx)");
    // The two edits make one build or two (v3, or v3 then v4): the task waits on whichever is loaded when it is due.
    await dev.until(/v3 ready/);
    const [, version] = await dev.until(/waits: The method Account\.statement does not exist in code version (v[34]); the task waits for a version that has it\./);
    const listed = await mend(["task", "show", "--application-url", url, task.taskId.taskUuid]);
    expect(listed.stdout).toContain(`Error     The method Account.statement does not exist in code version ${version}`);
    edit(api, "      monthlyStatement: {", "      statement: {");
    edit(account, "async monthlyStatement(ctx)", "async statement(ctx)");
    await dev.until(/v\d+ ready in \d+ ms \(src\/(api|account)\.ts.*\) — retrying 1 failing task/);
    expect(await task).toEqual({ text: "Monthly statement for dora. Balance: $0.00" });
  });

  test("--name keeps state across runs; dev expunge deletes it", async () => {
    const app = copyFixture("bank");
    const first = new DevRun(app, ["--name", "keep"]);
    await first.until(/v1 ready/);
    await Account.ref("erin").deposit(new ExternalContext({ url: await first.url() }), { amount: 9 });
    expect(await first.stop()).toBe(130);
    expect(existsSync(join(app, ".mend/keep/mend.sqlite"))).toBe(true);
    // A clean stop leaves no build folder and no holder behind.
    expect(readdirSync(join(app, ".mend/keep")).sort()).toEqual(["mend.sqlite"]);

    const second = new DevRun(app, ["--name", "keep"]);
    await second.until(/v2 ready/);
    expect(await Account.ref("erin").balance(new ExternalContext({ url: await second.url() }))).toEqual({ balance: 9 });
    const refused = await mend(["dev", "expunge", "--name", "keep", "--yes"], { cwd: app });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/^mend: The state of keep is in use by process \d+; stop it first\.$/);
    // Between two runtimes (the store's holder names a process that is gone) the watcher still holds it.
    writeFileSync(join(app, ".mend/keep/mend.sqlite.holder"), JSON.stringify({ pid: deadPid(), command: "node", since: "" }));
    const between = await mend(["dev", "expunge", "--name", "keep", "--yes"], { cwd: app });
    expect([between.exitCode, between.stderr]).toEqual([1, `mend: The state of keep is in use by process ${second.child.pid}; stop it first.`]);
    expect(existsSync(join(app, ".mend/keep/mend.sqlite"))).toBe(true);
    expect(await second.stop()).toBe(130);

    const unconfirmed = await mend(["dev", "expunge", "--name", "keep"], { cwd: app });
    expect([unconfirmed.exitCode, unconfirmed.stderr]).toEqual([1, "mend: Not deleting without confirmation: pass --yes."]);
    const expunged = await mend(["dev", "expunge", "--name", "keep", "--yes"], { cwd: app });
    expect([expunged.exitCode, expunged.stdout]).toEqual([0, "Deleted the state of keep."]);
    expect(existsSync(join(app, ".mend/keep"))).toBe(false);
  });

  test("dev expunge with an empty or garbled holder file says so, and deletes nothing", async () => {
    const app = copyFixture("bank");
    const dir = join(app, ".mend/keep");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "mend.sqlite"), "");
    for (const [file, text, why] of [
      ["mend.sqlite.holder", "", "is empty"],
      ["dev-run.holder", "{\"pid\": \"x", "is not a holder file (no process id in it)"],
    ] as const) {
      writeFileSync(join(dir, file), text);
      const r = await mend(["dev", "expunge", "--name", "keep", "--yes"], { cwd: app });
      expect([r.exitCode, r.stderr]).toEqual([
        1, `mend: Cannot tell whether the state of keep is in use: ${join(dir, file)} ${why}. If no mend process uses it, delete that file and run expunge again.`,
      ]);
      expect(existsSync(join(dir, "mend.sqlite"))).toBe(true);
      writeFileSync(join(dir, file), JSON.stringify({ pid: deadPid(), command: "node", since: "" }));
    }
    const r = await mend(["dev", "expunge", "--name", "keep", "--yes"], { cwd: app });
    expect([r.exitCode, r.stdout]).toEqual([0, "Deleted the state of keep."]);
  });

  test("without --name, state goes to a temporary folder, with a warning, removed on exit", async () => {
    const app = copyFixture("bank");
    const dev = new DevRun(app);
    const [, dir] = await dev.until(/no --name, so state goes to (\S+) and is deleted on exit/);
    await dev.until(/v1 ready/);
    expect(existsSync(join(dir!, "mend.sqlite"))).toBe(true);
    expect(await dev.stop()).toBe(130);
    expect(existsSync(dir!)).toBe(false);
  });

  test("a second dev run on the same state refuses with a clear error naming the first", async () => {
    const { app, dev } = await startBank(["--name", "shared"]);
    const second = new DevRun(app, ["--name", "shared"]);
    await second.until(new RegExp(`^mend: The state of shared is in use by mend dev run \\(process ${dev.child.pid}, since \\S+\\); stop it first\\.$`, "m"));
    expect((await second.child).exitCode).toBe(1);
  });

  test("a second server on the same store refuses with a clear error naming the holder", async () => {
    const { app, url } = await startBank(["--name", "shared"]);
    const holder = (await health(url)).pid;
    const served = await mend(["serve", "--application", "src/main.ts", "--name", "shared", "--port", "0"], { cwd: app });
    expect(served.exitCode).toBe(1);
    expect(served.stderr).toMatch(new RegExp(`mend: The store .*\\.mend/shared/mend\\.sqlite is in use by process ${holder} \\(.*\\), since .*\\. Stop it first\\.`));
  });

  test("--watch globs add files the build does not read; other files are ignored", async () => {
    const app = copyFixture("bank");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(app, "templates"));
    writeFileSync(join(app, "templates/welcome.txt"), "hello");
    writeFileSync(join(app, "notes.md"), "notes");
    const dev = new DevRun(app, ["--name", "bank", "--watch", "templates/**/*.txt"]);
    await dev.until(/v1 ready/);
    writeFileSync(join(app, "notes.md"), "not watched");
    writeFileSync(join(app, "templates/welcome.txt"), "hello again");
    await dev.until(/v2 ready in \d+ ms \(templates\/welcome\.txt\)/);
    expect(dev.output).not.toContain("notes.md");
  });

  test("200 reloads in a row keep the runtime's memory within 40 MB", async () => {
    const { dev, url, format } = await startBank();
    let rssAt10 = 0;
    for (let i = 2; i <= 201; i++) {
      writeFileSync(format, readFileSync(format, "utf8").replace(/\/\/ reload \d+\n|$/, `// reload ${i}\n`));
      await dev.until(new RegExp(`v${i} ready`));
      if (i === 11) rssAt10 = (await health(url)).rss;
    }
    const rssAt200 = (await health(url)).rss;
    const growthMb = (rssAt200 - rssAt10) / 2 ** 20;
    console.log(`runtime RSS after reload 10: ${(rssAt10 / 2 ** 20).toFixed(1)} MB, after 200: ${(rssAt200 / 2 ** 20).toFixed(1)} MB (+${growthMb.toFixed(1)} MB)`);
    expect(growthMb).toBeLessThan(40);
  }, 120_000);
});

/** A process id that no process has now. */
function deadPid(): number {
  for (let pid = 4_000_000; ; pid--) {
    try {
      process.kill(pid, 0);
    } catch (e) {
      if ((e as { code?: string }).code === "ESRCH") return pid;
    }
  }
}

function format(app: string): string {
  return join(app, "src/format.ts");
}

describe("mend dev run --typecheck", () => {
  /** The bank fixture with what tsc needs: typescript, mend and zod as packages, and a tsconfig. */
  function typedBank(): string {
    const app = copyFixture("bank");
    const root = join(import.meta.dirname, "..");
    mkdirSync(join(app, "node_modules"));
    symlinkSync(join(root, "node_modules/typescript"), join(app, "node_modules/typescript"));
    symlinkSync(join(root, "node_modules/zod"), join(app, "node_modules/zod"));
    symlinkSync(root, join(app, "node_modules/mend"));
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, skipLibCheck: true }, include: ["src"] }),
    );
    return app;
  }

  test("prints type errors after a save without holding back the swap, until they are fixed", async () => {
    const app = typedBank();
    const dev = new DevRun(app, ["--name", "bank", "--typecheck"]);
    await dev.until(/No type errors \(checked in \d+ ms\)/, 60_000);
    await dev.seen(/mend: type checking with TypeScript 5\.\d+\.\d+ \(tsconfig\.json\)/);
    await dev.seen(/v1 ready/);
    const ctx = new ExternalContext({ url: await dev.url() });
    edit(format(app), "return `${symbol}${balance.toFixed(2)}`;", "const cents: string = balance * 100;\n  return `${symbol}${balance.toFixed(2)}`;");
    await dev.until(/Type errors \(1\):\nsrc\/format\.ts\(\d+,\d+\): error TS2322: Type 'number' is not assignable to type 'string'\./, 60_000);
    // The new code loaded all the same.
    await dev.seen(/v2 ready in \d+ ms \(src\/format\.ts\)/);
    expect((await health(await dev.url())).version).toBe("v2");
    expect(await Account.ref("a").deposit(ctx, { amount: 2 })).toEqual({ balance: 2 });
    edit(format(app), "const cents: string = balance * 100;\n  ", "");
    await dev.until(/No type errors/, 60_000);
    await dev.seen(/v3 ready/);
  }, 120_000);

  test("says so clearly when the app has no typescript package", async () => {
    const dev = new DevRun(copyFixture("bank"), ["--name", "bank", "--typecheck"]);
    await dev.until(/mend: --typecheck needs the typescript package in this project \(npm install --save-dev typescript\); type checking is off\./);
    await dev.until(/v1 ready/);
  });
});
