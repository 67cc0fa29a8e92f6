// The dashboard's HTTP side (issue 16), against an in-process runtime and a real server:
// a workflow's steps, rerun from a step and each of its refusals, the event stream and its
// resume, the state routes, and the page's security (CSP, token, Host, the secret beyond
// loopback).
import { request } from "node:http";
import { brotliDecompressSync } from "node:zlib";
import { afterEach, describe, expect, test } from "vitest";
import { startServer, TaskId, type RunningServer, type Runtime, type ServerOptions } from "mend";
import app, { hold, Pipeline } from "./apps/steps/src/main.js";
import { SseParser, type SseEvent } from "../ui/sse.js";
import { next, start } from "./helpers/runtimes.js";
import { CONTENT_SECURITY_POLICY } from "../src/server/dashboard.js";
import { EventHub } from "../src/server/events.js";
import { createServer } from "node:http";

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function serve(options: ServerOptions = {}): Promise<{ runtime: Runtime; url: string; port: number }> {
  const runtime = await start(app);
  const server = await startServer(runtime, { port: 0, ...options });
  servers.push(server);
  const port = Number(new URL(server.url).port);
  return { runtime, url: `http://127.0.0.1:${port}`, port };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
  raw: Buffer;
}

/** A request with any headers (fetch may not set Host), answered as JSON when it is JSON. */
function send(port: number, method: string, path: string, options: { body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const text = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers = { ...(text !== undefined ? { "content-type": "application/json" } : {}), ...options.headers };
    const req = request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const raw = Buffer.concat(chunks);
        const json = String(res.headers["content-type"] ?? "").startsWith("application/json");
        resolve({ status: res.statusCode!, headers: res.headers, body: json ? JSON.parse(raw.toString()) : undefined, raw });
      });
    });
    req.on("error", reject);
    req.end(text);
  });
}

/** Spawns Pipeline(id).method and waits for its attempt `attempt` to end. */
async function spawnAndWait(runtime: Runtime, id: string, method: "run" | "poll", request: unknown, attempt = 1) {
  const ended = next<{ taskId: TaskId; attempt: number; outcome: string }>(runtime, "attempt:end", (e) => e.taskId.stateId === id && e.attempt === attempt);
  const taskId = await runtime.spawn({ stateType: "Pipeline", stateId: id, method }, request);
  await ended;
  return taskId;
}

const runs = async (runtime: Runtime, id: string) => (await Pipeline.ref(id).runs(runtime.context())).runs;

describe("a workflow's steps", () => {
  test("are listed in the order they were recorded, each with the helper it ran in and the attempt that recorded it", async () => {
    const { runtime, port } = await serve();
    const taskId = await spawnAndWait(runtime, "a", "run", {});
    const { status, body } = await send(port, "GET", `/v1/tasks/${taskId.taskUuid}/steps`);
    expect(status).toBe(200);
    expect(body.steps.map((s: { alias: string }) => s.alias)).toEqual([
      "charge", "charge/Pipeline('a').bump#1", "first", "second", "third/Pipeline('a').bump#1", "third",
    ]);
    expect(body.steps[0]).toMatchObject({ kind: "atMostOnce", step: "atMostOnce()", status: "completed", value: 1, attempt: 1 });
    expect(body.steps[1]).toMatchObject({ kind: "call", step: "Pipeline('a').bump()", within: "charge", value: { runs: 1 } });
    expect(body.steps[5]).toMatchObject({ kind: "atLeastOnce", value: 1 });
    expect(typeof body.steps[2].recordedAt).toBe("number");
  });

  test("a loop's steps are placed in their iteration, on the attempt that ran it", async () => {
    const { runtime, port } = await serve();
    const taskId = await spawnAndWait(runtime, "loop", "poll", { iterations: 3 }, 3);
    const { body } = await send(port, "GET", `/v1/tasks/${taskId.taskUuid}/steps`);
    const shown = body.steps.map((s: { alias: string; loop?: unknown; attempt: number }) => [s.alias, s.loop ?? null, s.attempt]);
    expect(shown).toEqual([
      ["poll[0]/tick", { alias: "poll", iteration: 0 }, 1],
      ["poll", null, 2],
      ["poll[1]/tick", { alias: "poll", iteration: 1 }, 2],
      ["poll[2]/tick", { alias: "poll", iteration: 2 }, 3],
    ]);
  });
});

describe("rerun from a step", () => {
  test("forgets that step and the ones after it; the next attempt, due now, runs only those again; the history says who and which", async () => {
    const { runtime, port } = await serve();
    const taskId = await spawnAndWait(runtime, "b", "run", {});
    expect(await runs(runtime, "b")).toEqual({ charge: 1, first: 1, second: 1, third: 1 });
    const again = next<{ attempt: number; outcome: string }>(runtime, "attempt:end", (e) => e.attempt === 2);
    const { status, body } = await send(port, "POST", `/v1/tasks/${taskId.taskUuid}/rerun`, { body: { fromStep: "second", by: "dashboard" } });
    expect([status, body]).toEqual([200, { rerun: true, forgotten: ["second", "third/Pipeline('b').bump#1", "third"], spawns: [] }]);
    expect((await again).outcome).toBe("FAILED");
    expect(await runs(runtime, "b")).toEqual({ charge: 1, first: 1, second: 2, third: 2 });
    const shown = await send(port, "GET", `/v1/tasks/${taskId.taskUuid}`);
    expect(shown.body.history).toEqual([
      { at: expect.any(Number), action: "rerun", by: "dashboard", detail: { fromStep: "second", forgotten: ["second", "third/Pipeline('b').bump#1", "third"] } },
    ]);
    expect(shown.body.task.attempts).toBe(2);
  });

  test("is refused for an atMostOnce step that started, saying why, and nothing changes", async () => {
    const { runtime, port } = await serve();
    const taskId = await spawnAndWait(runtime, "c", "run", {});
    const before = (await send(port, "GET", `/v1/tasks/${taskId.taskUuid}`)).body.task;
    const refused = await send(port, "POST", `/v1/tasks/${taskId.taskUuid}/rerun`, { body: { fromStep: "charge" } });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("AT_MOST_ONCE");
    expect(refused.body.error.message).toMatch(/^This step is atMostOnce and has run: running it again could repeat its effect/);
    // A step inside it is refused too: forgetting the helper's inner steps would run it again.
    const inner = await send(port, "POST", `/v1/tasks/${taskId.taskUuid}/rerun`, { body: { fromStep: "charge/Pipeline('c').bump#1" } });
    expect(inner.body.error.code).toBe("AT_MOST_ONCE");
    const after = await send(port, "GET", `/v1/tasks/${taskId.taskUuid}`);
    expect(after.body.task.dueAt).toBe(before.dueAt);
    expect(after.body.history).toEqual([]);
    expect((await send(port, "GET", `/v1/tasks/${taskId.taskUuid}/steps`)).body.steps).toHaveLength(6);
  });

  test("is refused for a task that is running, and for one that has finished", async () => {
    const { runtime, port } = await serve();
    let release!: () => void;
    const reached = new Promise<void>((resolve) => (hold.reached = resolve));
    hold.until = new Promise((resolve) => (release = resolve));
    try {
      const taskId = await runtime.spawn({ stateType: "Pipeline", stateId: "d", method: "run" }, {});
      await reached;
      const running = await send(port, "POST", `/v1/tasks/${taskId.taskUuid}/rerun`, { body: { fromStep: "second" } });
      expect([running.status, running.body.error]).toEqual([409, { code: "RUNNING", message: "Task is running; rerun from a step once its attempt has ended (or cancel it)." }]);
      expect(await runtime.cancel(taskId.taskUuid)).toBe(true);
      const finished = await send(port, "POST", `/v1/tasks/${taskId.taskUuid}/rerun`, { body: { fromStep: "second" } });
      expect(finished.status).toBe(409);
      expect(finished.body.error.code).toBe("FINISHED");
      expect(finished.body.error.message).toMatch(/^Task has finished \(CANCELLED\); a finished task cannot be rerun/);
    } finally {
      hold.until = undefined;
      hold.reached = undefined;
      release();
    }
  });

  test("a step the task has not recorded is a 404 that lists its steps; a body without fromStep is a 400", async () => {
    const { runtime, port } = await serve();
    const taskId = await spawnAndWait(runtime, "e", "run", {});
    const unknown = await send(port, "POST", `/v1/tasks/${taskId.taskUuid}/rerun`, { body: { fromStep: "fourth" } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toEqual({ code: "UNKNOWN_STEP", message: expect.stringMatching(/^The task has no step "fourth"; its steps are "charge", /) });
    expect((await send(port, "POST", `/v1/tasks/${taskId.taskUuid}/rerun`, { body: {} })).status).toBe(400);
    expect((await send(port, "POST", `/v1/tasks/${taskId.taskUuid}/rerun`, { body: { fromStep: "first", by: "someone" } })).status).toBe(400);
  });

  test("from a step in an earlier iteration of a loop, the loop goes back to that iteration", async () => {
    const { runtime, port } = await serve();
    const taskId = await spawnAndWait(runtime, "f", "poll", { iterations: 3 }, 3);
    const failedAgain = next<{ attempt: number; outcome: string }>(runtime, "attempt:end", (e) => e.attempt === 5);
    const { body } = await send(port, "POST", `/v1/tasks/${taskId.taskUuid}/rerun`, { body: { fromStep: "poll[1]/tick" } });
    expect(body).toEqual({ rerun: true, forgotten: ["poll[1]/tick", "poll[2]/tick"], spawns: [], loop: { alias: "poll", iteration: 1 } });
    expect((await failedAgain).outcome).toBe("FAILED");
    expect(await runs(runtime, "f")).toEqual({ tick0: 1, tick1: 2, tick2: 2 });
  });
});

/** Reads an event stream over a real socket: `event()` resolves with the next event that `match` accepts. */
function openStream(port: number, headers: Record<string, string> = {}) {
  const parser = new SseParser();
  const seen: SseEvent[] = [];
  const waiting = new Set<() => void>();
  let status = 0;
  const req = request({ host: "127.0.0.1", port, path: "/v1/events", headers, agent: false }, (res) => {
    status = res.statusCode!;
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      seen.push(...parser.push(chunk));
      for (const w of waiting) w();
    });
  });
  req.on("error", () => {});
  req.end();
  let cursor = 0;
  return {
    get status() {
      return status;
    },
    /** The next event past the last one returned that `match` accepts; with `anywhere`, any event since the stream opened (the cursor stays). */
    event(match: (e: SseEvent) => boolean = () => true, anywhere = false): Promise<SseEvent> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event; saw ${JSON.stringify(seen)}`)), 10_000);
        const check = () => {
          const i = seen.findIndex((e, j) => (anywhere || j >= cursor) && match(e));
          if (i < 0) return;
          if (!anywhere) cursor = i + 1;
          clearTimeout(timer);
          waiting.delete(check);
          resolve(seen[i]!);
        };
        waiting.add(check);
        check();
      });
    },
    close: () => req.destroy(),
  };
}

describe("the event stream", () => {
  test("says each change with an id; a reconnect with Last-Event-ID gets what it missed", async () => {
    const { runtime, port } = await serve();
    const first = openStream(port);
    const hello = await first.event((e) => e.event === "hello");
    expect(hello.id).toMatch(/^[0-9a-f]{8}-0$/);
    const taskId = await runtime.spawn({ stateType: "Pipeline", stateId: "s", method: "bump" }, { step: "x" });
    // On PostgreSQL the claim that starts the task may be heard before the spawn's own
    // task:created: each is looked for anywhere in the stream, not in a fixed order.
    const created = await first.event((e) => e.event === "task:created", true);
    expect(JSON.parse(created.data)).toMatchObject({ type: "task:created", taskUuid: taskId.taskUuid, stateType: "Pipeline", stateId: "s", method: "bump" });
    await first.event((e) => e.event === "attempt:start", true);
    const written = await first.event((e) => e.event === "state:written", true);
    expect(JSON.parse(written.data)).toMatchObject({ stateType: "Pipeline", stateId: "s" });
    const finished = await first.event((e) => e.event === "task:finished");
    expect(JSON.parse(finished.data)).toMatchObject({ taskUuid: taskId.taskUuid, status: "COMPLETED" });
    first.close();

    // While nobody reads, a change happens; the next stream, resuming, gets it first.
    await Pipeline.ref("s").bump(runtime.context(), { step: "while away" });
    const second = openStream(port, { "last-event-id": finished.id! });
    const missed = await second.event();
    expect(missed.event).toBe("state:written");
    expect(Number(missed.id!.split("-")[1])).toBe(Number(finished.id!.split("-")[1]) + 1);
    expect((await second.event()).event).toBe("hello");
    second.close();

    // An id of another run of the stream (a restarted server) cannot resume: the stream says so.
    const third = openStream(port, { "last-event-id": "0badc0de-3" });
    expect((await third.event()).event).toBe("reset");
    third.close();
  });

  test("a gap older than the ring is a reset; once nobody listens the runtime is no longer listened to, and old ids reset", async () => {
    const runtime = await start(app);
    // Counts the hub's listeners on the runtime, and says when the last one is gone.
    let listening = 0;
    let none = () => {};
    const allGone = new Promise<void>((resolve) => (none = resolve));
    const on = runtime.on.bind(runtime);
    runtime.on = ((event: never, listener: never) => {
      listening++;
      const off = on(event, listener);
      return () => {
        off();
        if (--listening === 0) none();
      };
    }) as typeof runtime.on;
    // The runtime as tests import it (from `mend`), the hub as the server holds it.
    const hub = new EventHub(runtime as unknown as ConstructorParameters<typeof EventHub>[0], [], { ringSize: 3, lingerMs: 1 });
    const server = createServer((req, res) => hub.open(req, res, new URL(req.url!, "http://x")));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    try {
      const stream = openStream(port);
      const hello = await stream.event((e) => e.event === "hello");
      for (let i = 0; i < 2; i++) hub.publish("test:event", { i });
      const last = await stream.event((e) => e.event === "test:event" && JSON.parse(e.data).i === 1);
      stream.close();
      for (let i = 2; i < 6; i++) hub.publish("test:event", { i });
      // Four events since `last`, the ring holds three.
      const late = openStream(port, { "last-event-id": last.id! });
      expect((await late.event()).event).toBe("reset");
      const resumed = openStream(port, { "last-event-id": `${hello.id!.split("-")[0]}-4` });
      expect(JSON.parse((await resumed.event()).data)).toMatchObject({ type: "test:event", i: 4 });
      late.close();
      resumed.close();
      // With no stream open, the hub stops listening after its linger; engine events cost nothing then.
      expect(listening).toBeGreaterThan(5);
      await allGone;
      const after = openStream(port, { "last-event-id": `${hello.id!.split("-")[0]}-5` });
      expect((await after.event()).event).toBe("reset");
      after.close();
    } finally {
      hub.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe("state types and instances", () => {
  test("types with their methods and counts, instances paged and searched by id, one instance with its tasks", async () => {
    const { runtime, port } = await serve();
    const ctx = runtime.context();
    for (const id of ["apple", "apricot", "banana", "avocado"]) await Pipeline.ref(id).bump(ctx, { step: id });
    const taskId = await runtime.spawn({ stateType: "Pipeline", stateId: "banana", method: "bump" }, { step: "task" });
    await runtime.wait(taskId);
    const types = await send(port, "GET", "/v1/states");
    expect(types.body.types).toEqual([
      { name: "Pipeline", inCode: true, instances: 4, more: false, methods: [{ name: "bump", kind: "writer" }, { name: "runs", kind: "reader" }, { name: "run", kind: "workflow" }, { name: "poll", kind: "workflow" }] },
    ]);
    const page1 = await send(port, "GET", "/v1/states/Pipeline?prefix=a&limit=2");
    expect(page1.body).toEqual({ stateType: "Pipeline", instances: [{ stateId: "apple", bytes: expect.any(Number), preview: '{"runs":{"apple":1}}' }, { stateId: "apricot", bytes: expect.any(Number), preview: expect.any(String) }], next: "apricot" });
    const page2 = await send(port, "GET", "/v1/states/Pipeline?prefix=a&limit=2&after=apricot");
    expect(page2.body.instances.map((i: { stateId: string }) => i.stateId)).toEqual(["avocado"]);
    expect(page2.body.next).toBeNull();
    const one = await send(port, "GET", "/v1/states/Pipeline/banana");
    expect(one.body).toMatchObject({ stateType: "Pipeline", stateId: "banana", exists: true, state: { runs: { banana: 1, task: 1 } } });
    expect(one.body.tasks.map((t: { taskId: TaskId }) => t.taskId.taskUuid)).toEqual([taskId.taskUuid]);
    expect((await send(port, "GET", "/v1/states/Pipeline/nobody")).body).toMatchObject({ exists: false, tasks: [] });
    // An id with a slash is one part of the path.
    await Pipeline.ref("a/b").bump(ctx, { step: "slash" });
    expect((await send(port, "GET", `/v1/states/Pipeline/${encodeURIComponent("a/b")}`)).body.state).toEqual({ runs: { slash: 1 } });
    const counts = await send(port, "GET", "/v1/counts");
    expect(counts.body.tasks.COMPLETED).toEqual({ count: 1, more: false });
    expect(counts.body.tasks.SCHEDULED).toEqual({ count: 0, more: false });
  });
});

describe("the page and who may use it", () => {
  test("/__/ is served compressed under a strict Content-Security-Policy, and loads only its own files, at most 150 KB in all", async () => {
    const { port } = await serve();
    const page = await send(port, "GET", "/__/", { headers: { "accept-encoding": "br, gzip" } });
    expect(page.status).toBe(200);
    expect(page.headers["content-security-policy"]).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'");
    expect(CONTENT_SECURITY_POLICY).not.toContain("unsafe-inline");
    expect(page.headers["content-encoding"]).toBe("br");
    const html = brotliDecompressSync(page.raw).toString();
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(refs.sort()).toEqual(["/__/app.css", "/__/app.js", "/__/favicon.svg"]);
    expect(html).not.toMatch(/<script>|<style>|style=/);
    let total = page.raw.length;
    for (const ref of refs) {
      const file = await send(port, "GET", ref!, { headers: { "accept-encoding": "br, gzip" } });
      expect(file.status).toBe(200);
      total += file.raw.length;
    }
    expect(total).toBeLessThan(150 * 1024);
    expect((await send(port, "GET", "/__/nothing.js")).status).toBe(404);
  });

  test("an action from a browser without the page's token is refused; with it, or from a client that is no browser, it is done", async () => {
    const { runtime, port, url } = await serve();
    const later = () => runtime.spawn({ stateType: "Pipeline", stateId: "t", method: "bump" }, { step: "later" }, { hours: 1 });
    const a = await later();
    const browser = { origin: url, "sec-fetch-site": "same-origin" };
    const refused = await send(port, "POST", `/v1/tasks/${a.taskUuid}/cancel`, { headers: browser });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("MISSING_TOKEN");
    expect((await send(port, "POST", `/v1/tasks/${a.taskUuid}/retry`, { headers: { ...browser, "x-mend-token": "guess" } })).status).toBe(403);
    expect((await send(port, "POST", `/v1/tasks/${a.taskUuid}/rerun`, { headers: browser, body: { fromStep: "x" } })).body.error.code).toBe("MISSING_TOKEN");
    expect((await runtime.getTask(a.taskUuid)).task.status).toBe("SCHEDULED");
    const { token } = (await send(port, "GET", "/v1/dashboard", { headers: browser })).body;
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect((await send(port, "POST", `/v1/tasks/${a.taskUuid}/cancel`, { headers: { ...browser, "x-mend-token": token } })).status).toBe(200);
    const b = await later();
    expect((await send(port, "POST", `/v1/tasks/${b.taskUuid}/cancel`)).status).toBe(200);
  });

  test("a foreign Host is refused for the page, its session and the stream; another site's page may not read them", async () => {
    const { port } = await serve();
    for (const path of ["/__/", "/__/app.js", "/v1/dashboard", "/v1/events", "/v1/states"]) {
      const answer = await send(port, "GET", path, { headers: { host: `evil.example:${port}` } });
      expect([path, answer.status, answer.body?.error.code]).toEqual([path, 403, "FORBIDDEN_HOST"]);
      const cross = await send(port, "GET", path, { headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
      expect([path, cross.status]).toEqual([path, 403]);
    }
  });

  test("beyond loopback the page loads without the secret, and everything it shows or does needs it", async () => {
    const secret = "dashboard-secret-5678";
    const { port } = await serve({ host: "0.0.0.0", adminSecret: secret });
    expect((await send(port, "GET", "/__/")).status).toBe(200);
    expect((await send(port, "GET", "/__/app.js")).status).toBe(200);
    for (const path of ["/v1/dashboard", "/v1/events", "/v1/states", "/v1/counts", "/v1/versions"]) {
      expect([path, (await send(port, "GET", path)).status]).toEqual([path, 401]);
    }
    const auth = { authorization: `Bearer ${secret}` };
    expect((await send(port, "GET", "/v1/dashboard", { headers: auth })).status).toBe(200);
    expect((await send(port, "GET", "/v1/versions", { headers: auth })).body).toMatchObject({ current: "v1", versions: [{ version: "v1" }], log: [] });
  });
});
