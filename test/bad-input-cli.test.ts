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
/** Answers nothing, ever. */
let silent: Server;
let silentUrl: string;
/** Answers every page of the list with the same `next`. */
let stuck: Server;
let stuckUrl: string;
let stuckPages = 0;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

beforeAll(async () => {
  ({ url } = await serve(copyFixture("bank", tempDir(true)), [], true));
  notMend = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end("<html>a web page</html>"));
  notMendUrl = await listen(notMend);
  silent = createServer(() => {});
  silentUrl = await listen(silent);
  stuck = createServer((_req, res) => {
    stuckPages++;
    const task = { id: "A/a/x", taskId: { stateType: "A", stateId: "a", taskUuid: "x" }, shortUuid: "x", method: "m", status: "SCHEDULED", dueAt: 0, updatedAt: 0, createdAt: 0, attempts: 0, lastError: null, iteration: 0, cursor: 5 };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ tasks: [task], next: 5 }));
  });
  stuckUrl = await listen(stuck);
});
afterAll(async () => {
  for (const server of [notMend, silent, stuck]) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

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
    await fails(["task", "retry", ...flags, "Account/x"], "mend: 'Account/x' is not a task id: give a task uuid, the start of one (as mend task list shows it), or TYPE/STATE_ID/UUID.");
    await fails(["task", "show", ...flags, "not-a-task"], "mend: 'not-a-task' is not a task id: give a task uuid, the start of one (as mend task list shows it), or TYPE/STATE_ID/UUID.");
    await fails(["task", "cancel", ...flags, "--state-type", "Account", "--state-id", "a", "--task-uuid", UNKNOWN], `mend: No task ${UNKNOWN}.`);
    await fails(["task", "cancel", ...flags, "--state-type", "Account", "--state-id", "a", "--task-uuid", "nope"], "mend: 'nope' is not a task id: give a task uuid, the start of one (as mend task list shows it), or TYPE/STATE_ID/UUID.");
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

describe("servers that do not answer as they should", () => {
  test("one that never answers: the CLI gives up after --timeout", async () => {
    await fails(["task", "list", "--application-url", silentUrl, "--timeout", "0.5"], `mend: The application at ${silentUrl} did not answer within 0.5 s.`);
    await fails(["task", "show", "--application-url", silentUrl, "--timeout", "0.5", UNKNOWN], `mend: The application at ${silentUrl} did not answer within 0.5 s.`);
  });

  test("one whose list pages never move on: the CLI stops instead of paging forever", async () => {
    stuckPages = 0;
    await fails(["task", "list", "--application-url", stuckUrl], `mend: ${stuckUrl} answered a page of tasks whose 'next' (5) does not move on; stopped listing.`);
    expect(stuckPages).toBe(2);
  });

  test.each([
    [["task", "list", "--limit", "0"], "mend: option '--limit <n>' argument '0' is invalid. expected a whole number of at least 1."],
    [["task", "list", "--timeout", "soon"], "mend: option '--timeout <seconds>' argument 'soon' is invalid. expected a number of seconds above 0 (at most 86400)."],
    [["task", "list", "--watch", "--json"], "mend: --watch draws a table; it does not go with --json."],
  ])("mend %j", async (args, line) => {
    await fails([...args, "--application-url", url], line);
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
