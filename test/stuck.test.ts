// `mend dev run` with tasks that take the runtime down: a synchronous loop, process.exit,
// a watcher killed while a task spins. Real processes, the bank fixture edited per test.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { afterEach, describe, expect, test } from "vitest";
import { ExternalContext } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import { copyFixture, mend } from "./helpers/cli.js";
import { DevRun } from "./helpers/dev.js";

const BUG = "const symbol = SYMBOLS[currency];";
const FIX = "const symbol = SYMBOLS[currency.toUpperCase()];";

function edit(file: string, from: string, to: string): void {
  const text = readFileSync(file, "utf8");
  if (!text.includes(from)) throw new Error(`nothing to replace in ${file}`);
  writeFileSync(file, text.replace(from, to));
}

/** The bank fixture whose statement (for the default currency, usd) runs `misbehaviour` first. */
function bankThat(misbehaviour: string): { app: string; format: string; broken: string } {
  const app = copyFixture("bank");
  const format = join(app, "src/format.ts");
  const broken = `if (currency === "usd") { ${misbehaviour} }\n  ${BUG}`;
  edit(format, BUG, broken);
  return { app, format, broken };
}

interface Attempt {
  number: number;
  version: string;
  startedAt: number;
  endedAt: number | null;
  outcome: string | null;
}
interface Shown {
  task: { status: string; dueAt: number | null; lastError: string | null; attempts: number };
  attempts: Attempt[];
}

async function show(url: string, uuid: string): Promise<Shown> {
  const r = await mend(["task", "show", "--json", "--application-url", url, uuid]);
  if (r.exitCode !== 0) throw new Error(`task show failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Shown;
}

async function health(url: string): Promise<{ pid: number; version: string }> {
  return (await fetch(`${url}/health`)).json() as Promise<{ pid: number; version: string }>;
}

/** When a process started, in ms since the epoch, to about 10 ms (Linux: /proc, in ticks of 10 ms). */
function processStartedAt(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const startTicks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  const uptimeMs = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]) * 1000;
  return Date.now() - (uptimeMs - startTicks * 10);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls a condition that no event announces (a process that goes away), up to `timeoutMs`. */
async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return condition();
}

const clockStep = `--import=${join(import.meta.dirname, "apps/clock-step.mjs")}`;

/** Whether the runtime answers /health within 300 ms (it does not while a task spins). */
function answers(url: string): Promise<boolean> {
  return fetch(`${url}/health`, { signal: AbortSignal.timeout(300) }).then(() => true, () => false);
}

const leftovers: number[] = [];
afterEach(() => {
  for (const pid of leftovers.splice(0)) if (alive(pid)) process.kill(pid, "SIGKILL");
});

describe("a task stuck in a synchronous loop", () => {
  test("is named and parked; the app, the CLI and cancel work meanwhile; a save that fixes it runs it once", async () => {
    const { app, format, broken } = bankThat("while (true) {}");
    const dev = new DevRun(app, ["--name", "bank", "--hang-timeout", "2500"]);
    const url = await dev.url();
    await dev.until(/v1 ready/);
    const ctx = new ExternalContext({ url });

    // 1. The first stuck task is parked within the hang timeout plus 2 s, and named.
    const spawnedAt = performance.now();
    const { task: carol } = await Account.ref("carol").spawn().statement(ctx);
    const uuid = carol.taskId.taskUuid;
    const [parkedLine, ranFor] = await dev.until(
      new RegExp(`⏸ Account\\('carol'\\)\\.statement \\[${uuid.slice(0, 18)}\\] on v1, after (\\d+\\.\\d) s: stuck: ran for more than 2\\.5 s without yielding; parked until new code or a retry[^\n]*`),
    );
    expect(performance.now() - spawnedAt).toBeLessThan(2500 + 2000);
    expect(Number(ranFor)).toBeGreaterThanOrEqual(2.5);
    expect(dev.output).toMatch(/mend: the runtime stopped answering for 2\.5 s; restarting it on v1/);
    expect(parkedLine).toContain(`(mend task retry ${uuid})`);
    await dev.until(/v1 ready/); // the new runtime

    // 2. While it is parked the CLI answers at once and shows why.
    const t0 = performance.now();
    const listed = await mend(["task", "list", "--json", "--application-url", url]);
    const listMs = performance.now() - t0;
    expect(listed.exitCode).toBe(0);
    expect(listMs).toBeLessThan(1000);
    const row = (JSON.parse(listed.stdout) as { taskId: { taskUuid: string }; status: string; dueAt: number | null; lastError: string }[]).find(
      (t) => t.taskId.taskUuid === uuid,
    )!;
    expect([row.status, row.dueAt, row.lastError]).toEqual([
      "SCHEDULED_RETRY", null, "stuck: ran for more than 2.5 s without yielding; parked until new code or a retry",
    ]);
    // Its attempt ended when the runtime was killed, not when the next one started.
    const { attempts } = await show(url, uuid);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.outcome).toBe("INTERRUPTED");
    expect(attempts[0]!.endedAt!).toBeLessThanOrEqual(processStartedAt((await health(url)).pid) + 30);
    expect(attempts[0]!.endedAt! - attempts[0]!.startedAt).toBeGreaterThanOrEqual(2500);

    // 3. The rest of the app keeps working: another task completes.
    const { task: welcome } = await Account.ref("bob").spawn().welcomeEmail(ctx);
    expect(await welcome).toEqual({ sent: true });
    await dev.until(/✓ Account\('bob'\)\.welcomeEmail \[[\w-]+\] completed on v1 \(attempt 1\)/);

    // 4. Cancel of the parked task succeeds.
    const cancelled = await mend(["task", "cancel", "--application-url", url, carol.taskId.stateType + "/" + carol.taskId.stateId + "/" + uuid]);
    expect([cancelled.exitCode, cancelled.stdout]).toEqual([0, "Task cancelled."]);
    expect((await show(url, uuid)).task.status).toBe("CANCELLED");

    // 5. Another one gets stuck and is parked; the save that fixes it runs it once.
    const { task: dave } = await Account.ref("dave").spawn().statement(ctx);
    await dev.until(new RegExp(`⏸ Account\\('dave'\\)\\.statement \\[${dave.taskId.taskUuid.slice(0, 18)}\\] on v1`));
    await dev.until(/v1 ready/);
    edit(format, broken, FIX);
    await dev.until(/v2 ready in \d+ ms \(src\/format\.ts\) — retrying 1 failing task/);
    expect(await dave).toEqual({ text: "Monthly statement for dave. Balance: $0.00" });
    const history = await show(url, dave.taskId.taskUuid);
    expect(history.attempts.map((a) => [a.version, a.outcome])).toEqual([["v1", "INTERRUPTED"], ["v2", "COMPLETED"]]);
    expect((await show(url, uuid)).attempts).toHaveLength(1); // the cancelled one did not run again
  }, 60_000);

  test("a 2 s synchronous step that finishes is not a hang", async () => {
    const { app } = bankThat("const t = performance.now(); while (performance.now() - t < 2000) {}");
    const dev = new DevRun(app, ["--name", "bank"]);
    const url = await dev.url();
    await dev.until(/v1 ready/);
    const before = (await health(url)).pid;
    const { task } = await Account.ref("carol").spawn().statement(new ExternalContext({ url }));
    await dev.until(/✗ Account\('carol'\)\.statement \[[\w-]+\] failed on v1 \(attempt 1\): Error: Unknown currency 'usd'/, 30_000);
    expect(dev.output).not.toContain("stopped answering");
    expect((await health(url)).pid).toBe(before);
    expect((await show(url, task.taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["FAILED"]);
  }, 60_000);

  test("a wall clock step of +10 s is not taken for a hang", async () => {
    const app = copyFixture("bank");
    const dev = new DevRun(app, ["--name", "bank", "--hang-timeout", "1000"], { NODE_OPTIONS: clockStep, MEND_TEST_CLOCK_STEP_MS: "10000" });
    const url = await dev.url();
    await dev.until(/v1 ready/);
    const before = (await health(url)).pid;
    await dev.until(/pong \d+/);
    dev.child.kill("SIGUSR2"); // the watcher's Date.now() jumps 10 s ahead
    await dev.until(/clock stepped \+10 s/);
    // Heartbeats go on: a watcher that measured from the last pong on the wall clock would have killed the runtime.
    for (let i = 0; i < 12; i++) await dev.until(/pong \d+/);
    expect(dev.output).not.toContain("stopped answering");
    expect((await health(url)).pid).toBe(before);
  }, 60_000);

  test("a wall clock step of -30 s during a hang does not delay its detection", async () => {
    const { app } = bankThat("while (true) {}");
    const dev = new DevRun(app, ["--name", "bank", "--hang-timeout", "2000"], { NODE_OPTIONS: clockStep, MEND_TEST_CLOCK_STEP_MS: "-30000" });
    const url = await dev.url();
    await dev.until(/v1 ready/);
    const spawnedAt = performance.now();
    await Account.ref("carol").spawn().statement(new ExternalContext({ url }));
    // Spinning: /health no longer answers. Then the watcher's clock goes back 30 s.
    expect(await eventually(async () => !(await answers(url)), 10_000)).toBe(true);
    dev.child.kill("SIGUSR2");
    await dev.until(/clock stepped -30 s/);
    await dev.until(/⏸ Account\('carol'\)\.statement \[[\w-]+\] on v1, after \d+\.\d s: stuck/, 10_000);
    expect(performance.now() - spawnedAt).toBeLessThan(2000 + 2000);
  }, 60_000);
});

describe("a task that kills the runtime", () => {
  test("with process.exit(1) is parked after doing so twice in a row; a fix runs it", async () => {
    const { app, format, broken } = bankThat("process.exit(1);");
    const dev = new DevRun(app, ["--name", "bank"]);
    const url = await dev.url();
    await dev.until(/v1 ready/);
    const ctx = new ExternalContext({ url });
    const { task } = await Account.ref("carol").spawn().statement(ctx);
    const short = task.taskId.taskUuid.slice(0, 18);
    await dev.until(/mend: the runtime exited with code 1; restarting it on v1/);
    await dev.until(new RegExp(`! Account\\('carol'\\)\\.statement \\[${short}\\] on v1 was running \\(for \\d+ ms\\); if the runtime stops again while it runs, it is parked`));
    await dev.until(/mend: the runtime exited with code 1; restarting it on v1/);
    await dev.until(
      new RegExp(`⏸ Account\\('carol'\\)\\.statement \\[${short}\\] on v1, after \\d+ ms: stopped the runtime twice in a row \\(it exited with code 1\\); parked until new code or a retry`),
    );
    await dev.until(/v1 ready/);
    // The runtime stays up now: the app answers, the task waits.
    expect(await Account.ref("erin").deposit(ctx, { amount: 3 })).toEqual({ balance: 3 });
    const shown = await show(url, task.taskId.taskUuid);
    expect([shown.task.status, shown.task.dueAt, shown.attempts.map((a) => a.outcome)]).toEqual(["SCHEDULED_RETRY", null, ["INTERRUPTED", "INTERRUPTED"]]);
    expect(dev.output.match(/the runtime exited with code 1/g)).toHaveLength(2);
    edit(format, broken, FIX);
    await dev.until(/v2 ready in \d+ ms \(src\/format\.ts\) — retrying 1 failing task/);
    expect(await task).toEqual({ text: "Monthly statement for carol. Balance: $0.00" });
  }, 60_000);

  test("a runtime that dies while it loads a save is restarted on it, and the save retries the failing task", async () => {
    const app = copyFixture("bank");
    const format = join(app, "src/format.ts");
    const dev = new DevRun(app, ["--name", "bank"]);
    const url = await dev.url();
    await dev.until(/v1 ready/);
    const { task } = await Account.ref("carol").spawn().statement(new ExternalContext({ url }));
    await dev.until(/✗ Account\('carol'\)\.statement \[[\w-]+\] failed on v1 \(attempt 1\).*retry in 60\.0 s/);
    // The fix, in a module that takes its runtime down the first time it is loaded.
    const mark = join(app, "loaded-once");
    writeFileSync(
      format,
      `import { existsSync, writeFileSync } from "node:fs";\nif (!existsSync(${JSON.stringify(mark)})) { writeFileSync(${JSON.stringify(mark)}, ""); process.exit(1); }\n` +
        readFileSync(format, "utf8").replace(BUG, FIX),
    );
    await dev.until(/mend: the runtime exited with code 1; restarting it on v2/);
    await dev.until(/v2 ready in \d+ ms \(src\/format\.ts\) — retrying 1 failing task/);
    expect(await task).toEqual({ text: "Monthly statement for carol. Balance: $0.00" });
  }, 60_000);
});

describe("the runtime child dies with its watcher", () => {
  test("killing the watcher with SIGKILL while a task spins leaves no runtime process behind", async () => {
    const { app } = bankThat("while (true) {}");
    const dev = new DevRun(app, ["--name", "bank", "--hang-timeout", "600000"]);
    const url = await dev.url();
    await dev.until(/v1 ready/);
    const runtimePid = (await health(url)).pid;
    leftovers.push(runtimePid);
    await Account.ref("carol").spawn().statement(new ExternalContext({ url }));
    // Spinning: /health no longer answers.
    expect(await eventually(async () => !(await answers(url)), 10_000)).toBe(true);
    dev.child.kill("SIGKILL");
    await dev.child;
    expect(await eventually(() => !alive(runtimePid), 10_000)).toBe(true);
  }, 30_000);
});
