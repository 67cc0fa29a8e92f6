import { execa } from "execa";
import { existsSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, test } from "vitest";
import { Application, ExternalContext, startServer, type RunningServer } from "mend";
import bank from "../fixtures/bank/src/main.js";
import { Account } from "../fixtures/bank/src/api.js";
import { BankServicer } from "../fixtures/bank/src/account.js";
import { Blob } from "./apps/values.js";
import { cli, copyFixture, mend, serve, waitForOutput } from "./helpers/cli.js";
import { next, start } from "./helpers/runtimes.js";

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

const valuesApp = fileURLToPath(new URL("./apps/values.ts", import.meta.url));

/** A port nothing listens on: bound, then released. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe("mend task", () => {
  test("list, show, cancel and retry against a running server", async () => {
    const { url } = await serve(copyFixture("bank"));
    const ctx = new ExternalContext({ url });
    const { task: done } = await Account.ref("alice").spawn().welcomeEmail(ctx);
    await done;
    const { task: later } = await Account.ref("bob").spawn({ when: { mins: 10 } }).welcomeEmail(ctx);
    const { task: failing } = await Account.ref("carol").spawn().statement(ctx);
    const flags = ["--application-url", url];

    // The failing task has made its first attempt once its error shows in the list.
    let list = await mend(["task", "list", ...flags]);
    for (let i = 0; i < 100 && !list.stdout.includes("Unknown currency"); i++) list = await mend(["task", "list", ...flags]);
    expect(list.exitCode).toBe(0);
    const lines = list.stdout.split("\n");
    expect(lines[0]).toMatch(/^TASK\s+STATE\s+METHOD\s+STATUS\s+WHEN\s+TRIES\s+LAST ERROR$/);
    expect(lines).toHaveLength(4);
    // Short uuids: a start of each uuid that no other task shares.
    const short = (uuid: string) => `${uuid.slice(0, 8)}[-0-9a-f]*`;
    expect(list.stdout).toMatch(new RegExp(`^${short(failing.taskId.taskUuid)}\\s+Account\\('carol'\\)\\s+statement\\s+SCHEDULED_RETRY\\s+due in \\d+ (s|min)\\s+1\\s+Error: Unknown currency 'usd'$`, "m"));
    expect(list.stdout).toMatch(new RegExp(`^${short(later.taskId.taskUuid)}\\s+Account\\('bob'\\)\\s+welcomeEmail\\s+SCHEDULED\\s+due in (9|10) min\\s+0$`, "m"));
    expect(list.stdout).toMatch(new RegExp(`^${short(done.taskId.taskUuid)}\\s+Account\\('alice'\\)\\s+welcomeEmail\\s+COMPLETED\\s+ran (just now|\\d+ s ago)\\s+1$`, "m"));

    const filtered = await mend(["task", "list", ...flags, "--status", "scheduled", "--json"]);
    expect(JSON.parse(filtered.stdout).map((t: { id: string }) => t.id)).toEqual([`Account/bob/${later.taskId.taskUuid}`]);
    const byMethod = await mend(["task", "list", ...flags, "--method", "statement", "--json"]);
    expect(JSON.parse(byMethod.stdout)).toHaveLength(1);

    const show = await mend(["task", "show", ...flags, `Account/carol/${failing.taskId.taskUuid}`]);
    expect(show.exitCode).toBe(0);
    expect(show.stdout).toContain(`Task      Account/carol/${failing.taskId.taskUuid}`);
    expect(show.stdout).toContain("Status    SCHEDULED_RETRY");
    expect(show.stdout).toMatch(/#1 {2}v1 {2}\S+ {2}\d+ ms {2}FAILED/);
    expect(show.stdout).toContain("Error: Unknown currency 'usd'");
    expect(show.stdout).toMatch(/at formatBalance \(.*src\/format\.ts:5:\d+\)/);

    const retry = await mend(["task", "retry", ...flags, later.taskId.taskUuid]);
    expect([retry.exitCode, retry.stdout]).toEqual([0, "Task will run now."]);
    expect(await later).toEqual({ sent: true });
    const retryDone = await mend(["task", "retry", ...flags, later.taskId.taskUuid]);
    expect([retryDone.exitCode, retryDone.stdout]).toEqual([1, "Task has finished (COMPLETED); nothing to retry."]);

    const cancel = ["task", "cancel", ...flags, "--state-type", "Account", "--state-id", "carol", "--task-uuid", failing.taskId.taskUuid];
    const cancelled = await mend(cancel);
    expect([cancelled.exitCode, cancelled.stdout]).toEqual([0, "Task cancelled."]);
    const again = await mend(cancel);
    expect([again.exitCode, again.stdout]).toEqual([1, "Task is already cancelled."]);
    const wholeId = await mend(["task", "cancel", ...flags, `Account/alice/${done.taskId.taskUuid}`]);
    expect([wholeId.exitCode, wholeId.stdout]).toEqual([1, "Task has already finished (COMPLETED); nothing to cancel."]);
    const retryCancelled = await mend(["task", "retry", ...flags, failing.taskId.taskUuid]);
    expect([retryCancelled.exitCode, retryCancelled.stdout]).toEqual([1, "Task has finished (CANCELLED); nothing to retry."]);
    const { task: overdraft } = await Account.ref("dora").spawn().withdraw(ctx, { amount: 5 });
    await expect(overdraft).rejects.toBeInstanceOf(Account.WithdrawAborted);
    const retryAborted = await mend(["task", "retry", ...flags, overdraft.taskId.taskUuid]);
    expect([retryAborted.exitCode, retryAborted.stdout]).toEqual([1, "Task has finished (ABORTED); nothing to retry."]);
  });

  test("an unknown task, a bad flag and an unreachable server each give one line and a non-zero exit", async () => {
    const { url } = await serve(copyFixture("bank"));
    const unknown = await mend(["task", "show", "--application-url", url, "00000000-0000-4000-8000-000000000000"]);
    expect([unknown.exitCode, unknown.stderr]).toEqual([1, "mend: No task 00000000-0000-4000-8000-000000000000."]);
    const malformed = await mend(["task", "show", "--application-url", url, "Account/x"]);
    expect([malformed.exitCode, malformed.stderr]).toEqual([1, "mend: 'Account/x' is not a task id: give a task uuid, the start of one (as mend task list shows it), or TYPE/STATE_ID/UUID."]);
    const badFlag = await mend(["task", "list", "--frobnicate"]);
    expect(badFlag.exitCode).toBe(1);
    expect(badFlag.stderr).toBe("mend: unknown option '--frobnicate'");
    const badStatus = await mend(["task", "list", "--application-url", url, "--status", "DONE"]);
    expect(badStatus.stderr).toBe("mend: --status must be one of SCHEDULED, STARTED, SCHEDULED_RETRY, SCHEDULED_ITERATION, COMPLETED, ABORTED, CANCELLED; got 'DONE'.");
    const noFlags = await mend(["task", "cancel", "--application-url", url]);
    expect([noFlags.exitCode, noFlags.stderr]).toEqual([1, "mend: Give --state-type, --state-id and --task-uuid, or a task id."]);
    const closed = await closedPort();
    const unreachable = await mend(["task", "list", "--application-url", `http://127.0.0.1:${closed}`]);
    expect([unreachable.exitCode, unreachable.stderr]).toEqual([1, `mend: Cannot reach the application at http://127.0.0.1:${closed} (ECONNREFUSED). Is it running?`]);
    const notUrl = await mend(["task", "list", "--application-url", "nope"]);
    expect([notUrl.exitCode, notUrl.stderr]).toEqual([1, "mend: 'nope' is not a URL."]);
  });

  test("any unique start of a task uuid works where a task id does; an ambiguous one lists the candidates", async () => {
    const { url } = await serve(copyFixture("bank"));
    const ctx = new ExternalContext({ url });
    const { task: first } = await Account.ref("pat").spawn({ when: { hours: 1 } }).welcomeEmail(ctx);
    const { task: second } = await Account.ref("sam").spawn({ when: { hours: 1 } }).welcomeEmail(ctx);
    const [a, b] = [first.taskId.taskUuid, second.taskId.taskUuid];
    let common = 0;
    while (a[common] === b[common]) common++;
    const flags = ["--application-url", url];

    // The list's short uuids are what the other commands take.
    const list = await mend(["task", "list", ...flags]);
    const shorts = list.stdout.split("\n").slice(1).map((line) => line.split(" ")[0]!);
    expect(shorts.every((s) => s.length >= 8 && s.length < 36)).toBe(true);
    expect(shorts).toContain(b.slice(0, shorts[0]!.length));
    const shown = await mend(["task", "show", ...flags, shorts[0]!]);
    expect(shown.stdout).toContain(`Task      Account/sam/${b}`);

    const unique = a.slice(0, common + 1);
    const byPrefix = await mend(["task", "show", ...flags, "--json", unique.toUpperCase()]);
    expect(JSON.parse(byPrefix.stdout).task.taskId.taskUuid).toBe(a);
    const retry = await mend(["task", "retry", ...flags, `Account/pat/${unique}`]);
    expect([retry.exitCode, retry.stdout]).toEqual([0, "Task will run now."]);
    expect(await first).toEqual({ sent: true });
    const cancel = await mend(["task", "cancel", ...flags, "--state-type", "Account", "--state-id", "sam", "--task-uuid", b.slice(0, common + 1)]);
    expect([cancel.exitCode, cancel.stdout]).toEqual([0, "Task cancelled."]);

    const ambiguous = await mend(["task", "show", ...flags, a.slice(0, common)]);
    expect(ambiguous.exitCode).toBe(1);
    expect(ambiguous.stderr).toMatch(new RegExp(`^mend: '${a.slice(0, common)}' is the start of 2 tasks; give more of the uuid: `));
    expect(ambiguous.stderr).toContain(`${a} Account('pat').welcomeEmail COMPLETED`);
    expect(ambiguous.stderr).toContain(`${b} Account('sam').welcomeEmail CANCELLED`);
    const none = await mend(["task", "show", ...flags, "ffff"]);
    expect([none.exitCode, none.stderr]).toEqual([1, "mend: No task ffff."]);
  });

  test("MEND_APPLICATION_URL sets the default --application-url; serve prints the line to set it when it picked the port", async () => {
    const printed = await serve(copyFixture("bank"));
    printed.child.kill("SIGTERM");
    expect((await printed.child).all).toContain(`mend: serving test at ${printed.url}\nexport MEND_APPLICATION_URL=${printed.url}`);

    const { url } = await serve(copyFixture("bank"));
    const ctx = new ExternalContext({ url });
    await (await Account.ref("env").spawn().welcomeEmail(ctx)).task;
    const list = await mend(["task", "list", "--json"], { env: { MEND_APPLICATION_URL: url } });
    expect(JSON.parse(list.stdout).map((t: { taskId: { stateId: string } }) => t.taskId.stateId)).toEqual(["env"]);
    // The flag still wins.
    const closed = await closedPort();
    const flag = await mend(["task", "list", "--application-url", `http://127.0.0.1:${closed}`], { env: { MEND_APPLICATION_URL: url } });
    expect(flag.stderr).toContain(`Cannot reach the application at http://127.0.0.1:${closed}`);
  });

  test("the table fits 80 columns, escapes what a terminal would obey, and shows an error only while a task fails", async () => {
    const { url } = await serve(copyFixture("bank"), ["--application", valuesApp]);
    const ctx = new ExternalContext({ url });
    const evil = "evil\x1b[2J\u202e\nid that is long enough to be cut";
    const { task: failing } = await Blob.ref(evil).spawn().failWith(ctx, { message: "boom \x1b[31mred\x1b[0m\nsecond line" });
    const { task: recovered } = await Blob.ref("flaky").spawn().flaky(ctx);
    await recovered;
    const flags = ["--application-url", url];
    let list = await mend(["task", "list", ...flags], { env: { COLUMNS: "80" } });
    for (let i = 0; i < 100 && !list.stdout.includes("boom"); i++) list = await mend(["task", "list", ...flags], { env: { COLUMNS: "80" } });
    const lines = list.stdout.split("\n");
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    expect(list.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\u202e]/);
    expect(list.stdout).toMatch(/Blob\('evil\\x1b\[2/);
    expect(list.stdout).toContain("boom \\x1b[31mred\\x1b[0m");
    // The task that completed after failing shows no error; the failing one does.
    const recoveredLine = lines.find((l) => l.startsWith(recovered.taskId.taskUuid.slice(0, 8)) && l.includes("flaky"))!;
    expect(recoveredLine).toMatch(/COMPLETED\s+ran (just now|\d+ s ago)\s+2$/);
    expect(list.stdout.match(/boom/g)).toHaveLength(1);

    const show = await mend(["task", "show", ...flags, failing.taskId.taskUuid]);
    expect(show.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\u202e]/);
    expect(show.stdout).toContain("State     Blob('evil\\x1b[2J\\u202e\\nid that is long enough to be cut')");
    expect(show.stdout).toContain("Error: boom \\x1b[31mred\\x1b[0m");
  });

  test("--limit shows the newest tasks; --watch redraws as tasks change", async () => {
    const { url } = await serve(copyFixture("bank"));
    const ctx = new ExternalContext({ url });
    for (const id of ["one", "two", "three"]) await Account.ref(id).spawn({ when: { hours: 1 } }).welcomeEmail(ctx);
    const limited = await mend(["task", "list", "--application-url", url, "--limit", "2"]);
    expect(limited.stdout.split("\n")).toHaveLength(3);
    expect(limited.stdout).toContain("Account('three')");
    expect(limited.stdout).not.toContain("Account('one')");

    const watching = execa("node", [cli, "task", "list", "--watch", "--application-url", url], { reject: false, stdin: "ignore", env: { COLUMNS: "120" } });
    try {
      await waitForOutput(watching, /Account\('three'\)/);
      await Account.ref("four").spawn({ when: { hours: 1 } }).welcomeEmail(ctx);
      await waitForOutput(watching, /Account\('four'\)/);
    } finally {
      watching.kill("SIGINT");
      await watching;
    }
  });

  test("retry of a task that waits for a method the code lacks says it will keep waiting", async () => {
    const rt = await start(bank);
    const { task } = await Account.ref("zoe").spawn({ when: { ms: 100 } }).welcomeEmail(rt.context());
    const waiting = next(rt, "task:waiting");
    await rt.load(new Application({ servicers: [BankServicer] }));
    await waiting;
    const server = await startServer(rt, { port: 0 });
    servers.push(server);
    const retry = await mend(["task", "retry", "--application-url", server.url, task.taskId.taskUuid]);
    expect([retry.exitCode, retry.stdout]).toEqual([
      1,
      "The state type Account does not exist in code version v2: the task will keep waiting until a version that has it is loaded; nothing to retry.",
    ]);
    const answer = await fetch(`${server.url}/v1/tasks/${task.taskId.taskUuid}/retry`, { method: "POST" });
    expect([answer.status, (await answer.json()).error.code]).toEqual([409, "WAITING_FOR_CODE"]);
    expect((await rt.getTask(task.taskId.taskUuid)).task).toMatchObject({ status: "SCHEDULED_RETRY", dueAt: null });
  });

  test("--help describes every command", async () => {
    const top = await mend(["--help"]);
    expect(top.exitCode).toBe(0);
    for (const command of ["serve", "task", "dev"]) expect(top.stdout).toContain(command);
    const task = await mend(["task", "--help"]);
    for (const command of ["list", "show", "cancel", "retry"]) expect(task.stdout).toContain(command);
  });
});

describe("mend serve", () => {
  test("with an admin secret, task endpoints refuse requests without it, and the secret is never printed", async () => {
    const secret = "s3cret-value-for-test";
    const { url, child } = await serve(copyFixture("bank"), ["--admin-secret", secret]);
    const refused = await mend(["task", "list", "--application-url", url]);
    expect([refused.exitCode, refused.stderr]).toEqual([1, "mend: This endpoint needs the admin secret (mend task … --admin-credential)."]);
    const wrong = await mend(["task", "list", "--application-url", url, "--admin-credential", "nope"]);
    expect(wrong.exitCode).toBe(1);
    const allowed = await mend(["task", "list", "--application-url", url, "--admin-credential", secret]);
    expect([allowed.exitCode, allowed.stdout]).toEqual([0, "No tasks."]);
    child.kill("SIGTERM");
    const result = await child;
    expect(result.exitCode).toBe(143);
    expect(result.all).not.toContain(secret);
  });

  test("SIGHUP (the terminal closed) stops it with the same cleanup as SIGTERM", async () => {
    const dir = copyFixture("bank");
    const { child } = await serve(dir);
    const state = join(dir, ".mend", "test");
    expect(existsSync(join(state, "mend.sqlite.holder"))).toBe(true);
    expect(readdirSync(join(state, "build"))).toEqual([String(child.pid)]);
    child.kill("SIGHUP");
    const result = await child;
    expect(result.exitCode).toBe(129);
    expect(existsSync(join(state, "mend.sqlite.holder"))).toBe(false);
    expect(readdirSync(join(state, "build"))).toEqual([]);
  });

  test("serving beyond loopback without an admin secret refuses to start", async () => {
    const result = await mend(["serve", "--application", "src/main.ts", "--name", "x", "--host", "0.0.0.0", "--port", "0"], { cwd: copyFixture("bank") });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toBe("mend: Serving on 0.0.0.0 (beyond loopback) needs an admin secret: --admin-secret or MEND_ADMIN_SECRET.");
  });

  test("a bad port, a bad name and a missing application are one clear line each", async () => {
    const dir = copyFixture("bank");
    const port = await mend(["serve", "--application", "src/main.ts", "--name", "x", "--port", "99999"], { cwd: dir });
    expect([port.exitCode, port.stderr]).toEqual([1, "mend: option '--port <port>' argument '99999' is invalid. expected a port number from 0 to 65535."]);
    const name = await mend(["serve", "--application", "src/main.ts", "--name", "../x"], { cwd: dir });
    expect(name.exitCode).toBe(1);
    expect(name.stderr).toContain("--name");
    const missing = await mend(["serve", "--application", "src/nope.ts", "--name", "x", "--port", "0"], { cwd: dir });
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/^mend: .*Could not resolve .*nope\.ts/);
    expect(missing.stderr).not.toMatch(/\n\s+at /);
  });
});
