// An app that uses what Node's ES modules allow (test/apps/esm: top-level await,
// import.meta, an ESM-only package) runs under mend dev run, mend serve and the test
// harness; its stored stacks stay mapped to the .ts lines after garbage collection.
import { cpSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, test } from "vitest";
import type { Application } from "mend";
import { serve } from "./helpers/cli.js";
import { DevRun } from "./helpers/dev.js";
import { start } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

const source = fileURLToPath(new URL("./apps/esm", import.meta.url));

/** A copy of the app with its ESM-only package installed. */
function copyApp(): string {
  const dir = join(realpathSync(tempDir()), "esm");
  cpSync(join(source, "src"), join(dir, "src"), { recursive: true });
  mkdirSync(join(dir, "node_modules"));
  cpSync(join(source, "vendor/esm-only"), join(dir, "node_modules/esm-only"), { recursive: true });
  return dir;
}

/** What greet answers under Node: import.meta of src/settings.ts, the JSON beside it, the ESM-only package. */
function expectedGreeting(dir: string) {
  const file = join(dir, "src/settings.ts");
  return {
    text: "Hello, ann",
    shout: "ANN!",
    url: pathToFileURL(file).href,
    dirname: join(dir, "src"),
    filename: file,
    resolved: pathToFileURL(join(dir, "src/settings.json")).href,
  };
}

async function post(url: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

const greet = { stateType: "Greeter", stateId: "g", method: "greet", request: { name: "ann" } };
const dive = { stateType: "Greeter", stateId: "g", method: "dive", request: {} };

interface Attempt {
  version: string;
  outcome: string | null;
  error: { stack: string | null } | null;
}

async function attempts(url: string, uuid: string): Promise<Attempt[]> {
  return ((await (await fetch(`${url}/v1/tasks/${uuid}`)).json()) as { attempts: Attempt[] }).attempts;
}

/** Waits for the task's attempt `n` to have ended (the runtime answers as it records them). */
async function endedAttempt(url: string, uuid: string, n: number): Promise<Attempt> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const found = (await attempts(url, uuid))[n - 1];
    if (found?.outcome) return found;
    if (Date.now() > deadline) throw new Error(`attempt ${n} of ${uuid} did not end within 20 s`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * The stored stack of a dive: every one of the twelve levels and the method that called
 * the first, each at its .ts line (`shift` lines down when the file was edited), and
 * nothing of mend's own or Node's internals.
 */
function expectDiveStack(stack: string | null | undefined, dir: string, shift = 0): void {
  expect(stack).toBeTruthy();
  const chain = join(dir, "src/chain.ts");
  expect(stack).toContain(`at level12 (${chain}:${14 + shift}:`);
  for (let level = 11; level >= 1; level--) expect(stack).toContain(`at level${level} (${chain}:${level + 1 + shift}:`);
  expect(stack).toMatch(new RegExp(`at Object\\.dive \\(${join(dir, "src/greeter.ts")}:13:\\d+\\)`));
  expect(stack).not.toMatch(/dist\/|node:internal|\.mjs:/);
}

describe("an ES module app", () => {
  test("under mend dev run: top-level await, import.meta and an ESM-only package; stacks mapped after garbage collection, also on a new version", async () => {
    const dir = copyApp();
    const dev = new DevRun(dir, ["--name", "esm"]);
    const url = await dev.url();
    await dev.until(/v1 ready in \d+ ms/);
    expect((await post(url, "/v1/call", greet)).body.outcome).toEqual({ status: "COMPLETED", response: expectedGreeting(dir) });

    // The method forces full garbage collections before it fails twelve calls deep.
    const spawned = await post(url, "/v1/tasks", dive);
    const uuid = spawned.body.taskId.taskUuid as string;
    await dev.until(/✗ Greeter\('g'\)\.dive \[[\w-]+\] failed on v1 \(attempt 1\): Error: too deep at 12/);
    await dev.until(/at level12 \(src\/chain\.ts:14:\d+\)/);
    expectDiveStack((await endedAttempt(url, uuid, 1)).error?.stack, dir);

    // A save that moves every line down one: the new version's stack has the new lines.
    const chain = join(dir, "src/chain.ts");
    writeFileSync(chain, `// Edited.\n${readFileSync(chain, "utf8")}`);
    await dev.until(/v2 ready in \d+ ms \(src\/chain\.ts\) — retrying 1 failing task/);
    const second = await endedAttempt(url, uuid, 2);
    expect(second.version).toBe("v2");
    expectDiveStack(second.error?.stack, dir, 1);

    // The fix; top-level await ran again for each version, so greet still answers.
    writeFileSync(chain, readFileSync(chain, "utf8").replace("if (n > 0)", "if (n > 99)"));
    await dev.until(/✓ Greeter\('g'\)\.dive \[[\w-]+\] completed on v3/);
    expect((await post(url, "/v1/call", greet)).body.outcome.response).toEqual(expectedGreeting(dir));
    expect(await dev.stop()).toBe(130);
  });

  test("under mend serve", async () => {
    const dir = copyApp();
    const { url } = await serve(dir);
    expect((await post(url, "/v1/call", greet)).body.outcome).toEqual({ status: "COMPLETED", response: expectedGreeting(dir) });
    const uuid = (await post(url, "/v1/tasks", dive)).body.taskId.taskUuid as string;
    expectDiveStack((await endedAttempt(url, uuid, 1)).error?.stack, dir);
  });

  test("in the test harness (Runtime.start in vitest)", async () => {
    const dir = copyApp();
    const { default: app } = (await import(pathToFileURL(join(dir, "src/main.ts")).href)) as { default: Application };
    const rt = await start(app);
    const outcome = await rt.call(greet, greet.request);
    expect(outcome).toEqual({ status: "COMPLETED", response: expectedGreeting(dir) });
  });
});
