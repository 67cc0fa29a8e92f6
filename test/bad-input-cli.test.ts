// The CLI given bad flags, missing arguments, wrong ids and servers that are not mend,
// beyond test/cli.test.ts: each is one clear line on stderr and exit code 1, never a stack.
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ExternalContext } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import { copyFixture, mend, serve } from "./helpers/cli.js";
import { tempDir } from "./helpers/temp.js";

let url: string;
let notMend: Server;
let notMendUrl: string;
beforeAll(async () => {
  ({ url } = await serve(copyFixture("bank", tempDir(true)), [], true));
  notMend = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<html>a web page</html>"));
  await new Promise<void>((resolve) => notMend.listen(0, "127.0.0.1", resolve));
  notMendUrl = `http://127.0.0.1:${(notMend.address() as { port: number }).port}`;
});
afterAll(() => new Promise<void>((resolve) => notMend.close(() => resolve())));

const UNKNOWN = "00000000-0000-4000-8000-000000000000";

/** Runs the CLI (in an empty folder) and expects exactly `line` on stderr, nothing on stdout, and exit code 1. */
async function fails(args: string[], line: string) {
  const result = await mend(args, { cwd: tempDir() });
  expect({ exitCode: result.exitCode, stdout: result.stdout }).toEqual({ exitCode: 1, stdout: "" });
  expect(result.stderr.split("\n")).toHaveLength(1);
  expect(result.stderr).toBe(line);
}

describe("missing and malformed flags and arguments", () => {
  test.each([
    [["task", "show"], "mend: missing required argument 'task-id'"],
    [["task", "retry"], "mend: missing required argument 'task-id'"],
    [["task", "list", "--application-url"], "mend: option '--application-url <url>' argument missing"],
    [["task", "list", "--status"], "mend: option '--status <status>' argument missing"],
    [["task", "list", "--application-url", "ftp://example.com"], "mend: 'ftp://example.com' is not an http(s) URL."],
    [["task", "list", "extra"], "mend: too many arguments for 'list'. Expected 0 arguments but got 1."],
    [["task", "frobnicate"], "mend: unknown command 'frobnicate'"],
    [["frobnicate"], "mend: unknown command 'frobnicate'"],
    [["serve", "--application", "src/main.ts"], "mend: required option '--name <name>' not specified"],
    [["serve", "--application", "src/main.ts", "--name", "x", "--port", "abc"], "mend: option '--port <port>' argument 'abc' is invalid. expected a port number from 0 to 65535."],
    [["dev", "run", "--application", "src/nope.ts"], "mend: No application at src/nope.ts; pass --application PATH to the entry module."],
    [["dev", "run", "--effect-validation", "loud"], "mend: option '--effect-validation <mode>' argument 'loud' is invalid. Allowed choices are enabled, quiet, disabled."],
    [["dev", "run", "--reload", "sometimes"], "mend: option '--reload <mode>' argument 'sometimes' is invalid. Allowed choices are swap, restart."],
    [["dev", "expunge"], "mend: required option '--name <name>' not specified"],
  ])("mend %j", async (args, line) => {
    await fails(args, line);
  });
});

describe("unknown and mismatched tasks", () => {
  test("retry and cancel of a task the server does not have", async () => {
    const flags = ["--application-url", url];
    await fails(["task", "retry", ...flags, UNKNOWN], `mend: No task ${UNKNOWN}.`);
    await fails(["task", "retry", ...flags, "Account/x"], "mend: 'Account/x' is not a task id (expected TYPE/STATE_ID/UUID).");
    await fails(["task", "cancel", ...flags, "--state-type", "Account", "--state-id", "a", "--task-uuid", UNKNOWN], `mend: No task ${UNKNOWN}.`);
    await fails(["task", "cancel", ...flags, "--state-type", "Account", "--state-id", "a", "--task-uuid", "nope"], "mend: 'nope' is not a task uuid.");
    await fails(["task", "cancel", ...flags, "Account/%E0%A4%A/" + UNKNOWN], "mend: 'Account/%E0%A4%A/" + UNKNOWN + "' is not a task id: its state id is not URI-encoded.");
  });

  test("cancel names the task's real state when the one given is another, and cancels nothing", async () => {
    const ctx = new ExternalContext({ url });
    const { task } = await Account.ref("alice").spawn({ when: { hours: 1 } }).welcomeEmail(ctx);
    const uuid = task.taskId.taskUuid;
    await fails(["task", "cancel", "--application-url", url, `Account/bob/${uuid}`], `mend: Task ${uuid} belongs to Account('alice'), not Account('bob').`);
    await fails(["task", "cancel", "--application-url", url, "--state-type", "Bank", "--state-id", "alice", "--task-uuid", uuid], `mend: Task ${uuid} belongs to Account('alice'), not Bank('alice').`);
    const shown = await mend(["task", "show", "--application-url", url, "--json", uuid]);
    expect(JSON.parse(shown.stdout).task.status).toBe("SCHEDULED");
  });
});

describe("a server that is not mend", () => {
  test.each([
    [["task", "list"]],
    [["task", "show", UNKNOWN]],
    [["task", "retry", UNKNOWN]],
    [["task", "cancel", `Account/a/${UNKNOWN}`]],
  ])("mend %j says so in one line", async (args) => {
    await fails([...args, "--application-url", notMendUrl], `mend: ${notMendUrl} answered 200 with a body that is not JSON; is it a mend server?`);
  });
});
