// Hostile HTTP input beyond test/server.test.ts: wrong types in bodies, unknown task ids
// and verbs on every route, bad queries, bodies too large to announce their size,
// refused spawns, garbage and abrupt disconnects. Each gets a 4xx (or the connection is
// dropped), the server keeps serving, and nothing is lost or created by a refused request.
import { connect } from "node:net";
import { request } from "node:http";
import { beforeAll, describe, expect, test } from "vitest";
import { ExternalContext } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import { copyFixture, serve } from "./helpers/cli.js";
import { tempDir } from "./helpers/temp.js";

let url: string;
let port: number;
let ctx: ExternalContext;
beforeAll(async () => {
  ({ url } = await serve(copyFixture("bank", tempDir(true)), [], true));
  port = Number(new URL(url).port);
  ctx = new ExternalContext({ url });
});

type Answer = { status: number; body: any };

/** One request with exactly these headers and body. */
function send(method: string, path: string, options: { body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...(options.body !== undefined ? { "content-type": "application/json" } : {}), ...options.headers };
    const req = request(`${url}${path}`, { method, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

const json = (method: string, path: string, body: unknown) => send(method, path, { body: JSON.stringify(body) });

/** Writes raw bytes on a new connection; resolves with what the server answered before closing, if anything. */
function raw(bytes: string, options: { close?: "after-write" | "when-answered" } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = "";
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(bytes);
      if (options.close === "after-write") socket.destroy();
    });
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      answer += chunk;
      if (options.close === "when-answered" && /\r\n\r\n[\s\S]*\}$/.test(answer)) socket.destroy();
    });
    socket.on("close", () => resolve(answer));
    socket.on("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNRESET" ? resolve(answer) : reject(e)));
  });
}

async function tasksOf(stateId: string): Promise<{ id: string; status: string; taskId: { taskUuid: string } }[]> {
  const { status, body } = await send("GET", `/v1/tasks?stateId=${stateId}&limit=1000`);
  expect(status).toBe(200);
  return body.tasks;
}

const target = { stateType: "Account", stateId: "types", method: "deposit" };
const UNKNOWN = "00000000-0000-4000-8000-000000000000";

describe("wrong types in bodies", () => {
  test.each([
    ["an array", []],
    ["null", null],
    ["a number", 42],
    ["a string", "deposit"],
    ["a numeric stateType", { ...target, stateType: 7 }],
    ["an array as stateId", { ...target, stateId: ["x"] }],
    ["an empty method", { ...target, method: "" }],
    ["a stateId of 2000 characters", { ...target, stateId: "x".repeat(2000) }],
  ])("POST /v1/call with %s is a 400 that says what is wrong", async (_what, body) => {
    const { status, body: answer } = await json("POST", "/v1/call", body);
    expect(status).toBe(400);
    expect(answer.error.code).toBe("INVALID_ARGUMENT");
    expect(answer.error.message).toMatch(/^Invalid call: /);
  });

  test.each([
    ["a string as request", { ...target, request: "ten" }, /^Invalid request for Account\.deposit: /],
    ["a negative amount", { ...target, request: { amount: -3 } }, /^Invalid request for Account\.deposit: .*amount/s],
    ["a string as when", { ...target, request: { amount: 1 }, when: "soon" }, /^Invalid task: .*when/s],
    ["a string duration", { ...target, request: { amount: 1 }, when: { secs: "5" } }, /^Invalid task: .*when/s],
    ["a date that is not a date", { ...target, request: { amount: 1 }, when: { at: "yesterday" } }, /^Invalid task: .*when/s],
    ["a misspelt unit", { ...target, request: { amount: 1 }, when: { second: 5 } }, /^Invalid task: .*when/s],
    ["a negative duration", { ...target, request: { amount: 1 }, when: { secs: -5 } }, /^`when\.secs` must be a finite number >= 0, got -5\.$/],
    ["a duration of 1e308 ms", { ...target, request: { amount: 1 }, when: { ms: 1e308 } }, /^`when` is more than 100 years from now\.$/],
    ["a duration of 1e308 days", { ...target, request: { amount: 1 }, when: { days: 1e308 } }, /^`when` is more than 100 years from now\.$/],
    ["a date in the year 275760", { ...target, request: { amount: 1 }, when: { at: 8.64e15 } }, /^`when` is \+275760-09-13T00:00:00\.000Z, more than 100 years from now\.$/],
    ["a date past what a Date holds", { ...target, request: { amount: 1 }, when: { at: 1e20 } }, /^Invalid task: .*when/s],
  ])("POST /v1/tasks with %s is a 400, and creates no task", async (_what, body, message) => {
    const { status, body: answer } = await json("POST", "/v1/tasks", body);
    expect([status, answer.error.code]).toEqual([400, "INVALID_ARGUMENT"]);
    expect(answer.error.message).toMatch(message);
    expect(await tasksOf("types")).toEqual([]);
  });

  test("a spawn of an unknown state type or method is a 404, and creates no task", async () => {
    const noType = await json("POST", "/v1/tasks", { ...target, stateType: "Nope" });
    expect([noType.status, noType.body.error.message]).toEqual([404, "Unknown state type Nope."]);
    const noMethod = await json("POST", "/v1/tasks", { ...target, method: "nope" });
    expect([noMethod.status, noMethod.body.error.message]).toEqual([404, "Unknown method Account.nope."]);
    expect(await tasksOf("types")).toEqual([]);
    expect(await Account.ref("types").balance(ctx)).toEqual({ balance: 0 });
  });
});

describe("bodies nested too deeply", () => {
  test.each([
    ["an array", `[${"[".repeat(100_000)}${"]".repeat(100_000)}]`],
    ["a request", `{"stateType":"Account","stateId":"deep","method":"deposit","request":{"amount":1,"x":${"[".repeat(5000)}${"]".repeat(5000)}}}`],
  ])("%s nested deeper than the server checks is a 400, not a 500", async (_what, body) => {
    for (const path of ["/v1/call", "/v1/tasks"]) {
      const answer = await send("POST", path, { body });
      expect([answer.status, answer.body.error.code]).toEqual([400, "TOO_DEEP"]);
      expect(answer.body.error.message).toBe("The body nests arrays or objects more than 512 levels deep.");
    }
    expect(await Account.ref("deep").balance(ctx)).toEqual({ balance: 0 });
  });

  test("brackets inside strings do not count", async () => {
    const { status } = await json("POST", "/v1/call", { stateType: "Account", stateId: "[".repeat(900), method: "balance" });
    expect(status).toBe(200);
  });
});

describe("unknown task ids, verbs and queries", () => {
  test.each([
    ["GET", "wait"],
    ["POST", "cancel"],
    ["POST", "retry"],
  ])("%s /v1/tasks/:uuid/%s: an unknown uuid is a 404 and a malformed one a 400", async (method, action) => {
    const unknown = await send(method, `/v1/tasks/${UNKNOWN}/${action}`);
    expect([unknown.status, unknown.body.error]).toEqual([404, { code: "TASK_NOT_FOUND", message: `No task ${UNKNOWN}.` }]);
    for (const bad of ["xyz", UNKNOWN.replace("0", "g"), `${UNKNOWN}0`, "%00", "0000-0000"]) {
      const malformed = await send(method, `/v1/tasks/${bad}/${action}`);
      expect([malformed.status, malformed.body.error.code]).toEqual([400, "INVALID_ARGUMENT"]);
    }
  });

  test.each([
    ["DELETE", "/v1/tasks", "POST or GET"],
    ["PUT", "/v1/call", "POST"],
    ["PATCH", "/health", "GET"],
    ["POST", `/v1/tasks/${UNKNOWN}`, "GET"],
    ["GET", `/v1/tasks/${UNKNOWN}/cancel`, "POST"],
    ["DELETE", `/v1/tasks/${UNKNOWN}/retry`, "POST"],
  ])("%s %s is a 405 that names the verbs the route takes", async (method, path, verbs) => {
    const { status, body } = await send(method, path);
    expect([status, body.error.code]).toEqual([405, "METHOD_NOT_ALLOWED"]);
    expect(body.error.message).toBe(`${path} takes ${verbs}, not ${method}.`);
  });

  test("routes that do not exist are a 404, also below a task", async () => {
    for (const path of [`/v1/tasks/${UNKNOWN}/wait/more`, "/v1", "/v1/tasks/", "/health/x"]) {
      const { status } = await send("GET", path);
      expect([path, status]).toEqual([path, path === "/v1/tasks/" ? 200 : 404]);
    }
  });

  test.each(["limit=abc", "limit=0", "limit=5000", "limit=1.5", "status=DONE", "status=", "before=yesterday"])(
    "GET /v1/tasks?%s is a 400",
    async (query) => {
      const { status, body } = await send("GET", `/v1/tasks?${query}`);
      expect([status, body.error.code]).toEqual([400, "INVALID_ARGUMENT"]);
      expect(body.error.message).toMatch(/^Invalid query: /);
    },
  );
});

describe("refused requests create nothing", () => {
  test("a spawn from a foreign Host or another origin creates no task", async () => {
    const body = JSON.stringify({ ...target, stateId: "refused", request: { amount: 1 } });
    const host = await send("POST", "/v1/tasks", { body, headers: { host: "evil.example" } });
    expect([host.status, host.body.error.code]).toEqual([403, "FORBIDDEN_HOST"]);
    const origin = await send("POST", "/v1/tasks", { body, headers: { origin: "null" } });
    expect([origin.status, origin.body.error.code]).toEqual([403, "CROSS_ORIGIN"]);
    const site = await send("POST", "/v1/tasks", { body, headers: { "sec-fetch-site": "same-site" } });
    expect([site.status, site.body.error.code]).toEqual([403, "CROSS_ORIGIN"]);
    // HTTP/1.0 without any Host header at all.
    const noHost = await raw(`POST /v1/tasks HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(noHost).toMatch(/^HTTP\/1\.1 403 /);
    expect(await tasksOf("refused")).toEqual([]);
  });

  test("a body over 1 MiB sent in chunks, without a length, is a 413 and is not run", async () => {
    const chunk = JSON.stringify({ ...target, stateId: "chunked", request: { amount: 1, pad: "x".repeat(100) } }).replace("}}", "");
    const { status, body } = await new Promise<Answer>((resolve, reject) => {
      const req = request(`${url}/v1/call`, { method: "POST", headers: { "content-type": "application/json", "transfer-encoding": "chunked" }, agent: false }, (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      });
      req.on("error", reject);
      req.write(chunk);
      const pad = "x".repeat(64 * 1024);
      let sent = 0;
      const more = () => {
        while (sent < 20 && !req.destroyed) {
          sent++;
          if (!req.write(pad)) return void req.once("drain", more);
        }
        req.end('"}}');
      };
      more();
    }).catch((e: NodeJS.ErrnoException) => {
      // The server may close the connection while the rest of the body is still on its way.
      if (e.code === "ECONNRESET" || e.code === "EPIPE") return { status: 0, body: { error: { code: "CUT" } } };
      throw e;
    });
    // A 413, or (if the server closed first) a cut connection: either way the call did not run.
    expect([[413, "BODY_TOO_LARGE"], [0, "CUT"]]).toContainEqual([status, body.error.code]);
    expect(await Account.ref("chunked").balance(ctx)).toEqual({ balance: 0 });
  });

  test("a Content-Length over the limit is refused before the body is read", async () => {
    const answer = await raw("POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{", { close: "when-answered" });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('"BODY_TOO_LARGE"');
  });
});

describe("garbage and abrupt disconnects", () => {
  test("bytes that are not HTTP, and broken request lines, are dropped; the server keeps serving", async () => {
    expect(await raw("\x00\x01\x02 hello there\r\n\r\n")).toBe("");
    expect(await raw("GET / HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n")).toBe("");
    expect(await raw("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n")).toBe("");
    // A chunked body whose chunk size is not hex: its call never runs.
    const call = JSON.stringify({ stateType: "Account", stateId: "garbage", method: "deposit", request: { amount: 1 } });
    expect(await raw(`POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n${call}\r\n0\r\n\r\n`)).toBe("");
    expect(await Account.ref("garbage").balance(ctx)).toEqual({ balance: 0 });
    const { status, body } = await send("GET", "/health");
    expect([status, body.ok]).toEqual([200, true]);
  });

  test("clients that vanish in the middle of requests lose nothing and add nothing", async () => {
    // Interleaved: complete deposits, which must all count once, and deposits whose
    // connection dies in the headers or the body, which must not count at all.
    const body = JSON.stringify({ stateType: "Account", stateId: "vanish", method: "deposit", request: { amount: 1 } });
    const head = `POST /v1/call HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n`;
    const cuts = [head.slice(0, 20), head, `${head}\r\n`, `${head}\r\n${body.slice(0, 10)}`, `${head}\r\n${body.slice(0, -1)}`];
    const work: Promise<unknown>[] = [];
    let completed = 0;
    for (let i = 0; i < 60; i++) {
      if (i % 2 === 0)
        work.push(
          Account.ref("vanish")
            .deposit(ctx, { amount: 1 })
            .then(() => completed++),
        );
      else work.push(raw(cuts[i % cuts.length]!, { close: "after-write" }));
    }
    // A wait whose client goes away leaves the task alone.
    const { task } = await Account.ref("vanish").spawn({ when: { ms: 300 } }).welcomeEmail(ctx);
    work.push(raw(`GET /v1/tasks/${task.taskId.taskUuid}/wait?timeout=60000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, { close: "after-write" }));
    // A spawn whose client goes away after sending it whole still creates exactly one task.
    const spawn = JSON.stringify({ stateType: "Account", stateId: "vanish-spawn", method: "welcomeEmail", request: {} });
    work.push(raw(`POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${spawn.length}\r\n\r\n${spawn}`, { close: "when-answered" }));
    await Promise.all(work);

    expect(completed).toBe(30);
    expect(await Account.ref("vanish").balance(ctx)).toEqual({ balance: 30 });
    expect(await task).toEqual({ sent: true });
    const spawned = await tasksOf("vanish-spawn");
    expect(spawned).toHaveLength(1);
    const waited = await send("GET", `/v1/tasks/${spawned[0]!.taskId.taskUuid}/wait?timeout=20000`);
    expect(waited.body).toEqual({ done: true, outcome: { status: "COMPLETED", response: { sent: true } } });
  });
});
