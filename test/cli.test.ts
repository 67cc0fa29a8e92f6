import { createServer } from "node:net";
import { describe, expect, test } from "vitest";
import { ExternalContext } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import { copyFixture, mend, serve } from "./helpers/cli.js";

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
    expect(lines[0]).toMatch(/^TASK UUID\s+STATE\s+METHOD\s+STATUS\s+WHEN\s+ATTEMPTS\s+LAST ERROR$/);
    expect(lines).toHaveLength(4);
    expect(list.stdout).toMatch(new RegExp(`${failing.taskId.taskUuid}\\s+Account\\('carol'\\)\\s+statement\\s+SCHEDULED_RETRY\\s+in \\d+ (s|min)\\s+1\\s+Error: Unknown currency 'usd'`));
    expect(list.stdout).toMatch(new RegExp(`${later.taskId.taskUuid}\\s+Account\\('bob'\\)\\s+welcomeEmail\\s+SCHEDULED\\s+in (9|10) min\\s+0`));
    expect(list.stdout).toMatch(new RegExp(`${done.taskId.taskUuid}\\s+Account\\('alice'\\)\\s+welcomeEmail\\s+COMPLETED\\s+(now|\\d+ s ago)\\s+1`));

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
    expect([retryDone.exitCode, retryDone.stdout]).toEqual([1, "Task is running or has finished; nothing to retry."]);

    const cancel = ["task", "cancel", ...flags, "--state-type", "Account", "--state-id", "carol", "--task-uuid", failing.taskId.taskUuid];
    const cancelled = await mend(cancel);
    expect([cancelled.exitCode, cancelled.stdout]).toEqual([0, "Task cancelled."]);
    const again = await mend(cancel);
    expect([again.exitCode, again.stdout]).toEqual([1, "Task is not running."]);
    const wholeId = await mend(["task", "cancel", ...flags, `Account/alice/${done.taskId.taskUuid}`]);
    expect([wholeId.exitCode, wholeId.stdout]).toEqual([1, "Task is not running."]);
  });

  test("an unknown task, a bad flag and an unreachable server each give one line and a non-zero exit", async () => {
    const { url } = await serve(copyFixture("bank"));
    const unknown = await mend(["task", "show", "--application-url", url, "00000000-0000-4000-8000-000000000000"]);
    expect([unknown.exitCode, unknown.stderr]).toEqual([1, "mend: No task 00000000-0000-4000-8000-000000000000."]);
    const malformed = await mend(["task", "show", "--application-url", url, "Account/x"]);
    expect([malformed.exitCode, malformed.stderr]).toEqual([1, "mend: 'Account/x' is not a task id (expected TYPE/STATE_ID/UUID)."]);
    const badFlag = await mend(["task", "list", "--frobnicate"]);
    expect(badFlag.exitCode).toBe(1);
    expect(badFlag.stderr).toBe("mend: unknown option '--frobnicate'");
    const badStatus = await mend(["task", "list", "--application-url", url, "--status", "DONE"]);
    expect(badStatus.stderr).toBe("mend: --status must be one of SCHEDULED, STARTED, SCHEDULED_RETRY, SCHEDULED_ITERATION, COMPLETED, ABORTED, CANCELLED; got 'DONE'.");
    const noFlags = await mend(["task", "cancel", "--application-url", url]);
    expect([noFlags.exitCode, noFlags.stderr]).toEqual([1, "mend: Give --state-type, --state-id and --task-uuid, or a whole task id."]);
    const closed = await closedPort();
    const unreachable = await mend(["task", "list", "--application-url", `http://127.0.0.1:${closed}`]);
    expect([unreachable.exitCode, unreachable.stderr]).toEqual([1, `mend: Cannot reach the application at http://127.0.0.1:${closed} (ECONNREFUSED). Is it running?`]);
    const notUrl = await mend(["task", "list", "--application-url", "nope"]);
    expect([notUrl.exitCode, notUrl.stderr]).toEqual([1, "mend: 'nope' is not a URL."]);
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
