// The Runtime's own surface, in-process: where its store lives, initialize's failures, loads
// and their event, contexts, tokens, a task's record and its line in a list. (The CLI and
// server tests reach most of it through dist/ in child processes.)
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { Application, Runtime, deny } from "mend";
import { Counter, CounterServicer, Job, jobServicer } from "./apps/flaky.js";
import { next, start } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

const app = new Application({ servicers: [jobServicer(), CounterServicer] });

describe("where the store lives", () => {
  const saved = process.env.TMPDIR;
  afterEach(() => {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  });

  test("without a path or directory, a temporary folder of its own, removed at stop", async () => {
    // A temporary root of this test's own, so that other tests' folders do not count.
    process.env.TMPDIR = tempDir();
    const rt = await Runtime.start(app);
    expect(dirname(dirname(rt.path))).toBe(process.env.TMPDIR);
    expect(readdirSync(process.env.TMPDIR)).toEqual([expect.stringMatching(/^mend-/)]);
    expect(existsSync(rt.path)).toBe(true);
    await rt.stop({ graceMs: 0 });
    expect(readdirSync(process.env.TMPDIR)).toEqual([]);
  });

  test("in a directory given, as mend.sqlite, kept at stop", async () => {
    const directory = tempDir();
    const rt = await Runtime.start(app, { directory });
    expect(rt.path).toBe(join(directory, "mend.sqlite"));
    await Counter.ref("c").increment(rt.context(), {});
    await rt.stop({ graceMs: 0 });
    expect(existsSync(join(directory, "mend.sqlite"))).toBe(true);
    // And it is the same store when started again.
    const again = await start(app, { directory });
    expect(await Counter.ref("c").get(again.context(), {})).toEqual({ count: 1 });
  });

  test("a path given is used as it is, and no temporary folder is made", async () => {
    const path = join(tempDir(), "mine.db");
    process.env.TMPDIR = tempDir();
    const rt = await start(app, { path });
    expect(rt.path).toBe(path);
    expect(existsSync(path)).toBe(true);
    expect(readdirSync(process.env.TMPDIR)).toEqual([]);
  });

  test("a temporary store whose start fails leaves no folder behind", async () => {
    process.env.TMPDIR = tempDir();
    const failing = new Application({
      servicers: [jobServicer()],
      initialize: () => {
        throw new Error("no");
      },
    });
    await expect(Runtime.start(failing)).rejects.toMatchObject({ code: "INITIALIZE_FAILED" });
    expect(readdirSync(process.env.TMPDIR)).toEqual([]);
  });

  test("a path that is a folder is refused", async () => {
    const dir = tempDir();
    await expect(Runtime.start(app, { path: dir })).rejects.toThrow();
  });
});

describe("initialize", () => {
  test("a failure is INITIALIZE_FAILED with the error's message, and the error as its cause", async () => {
    const boom = new Error("the bank is closed");
    const failing = new Application({ servicers: [jobServicer()], initialize: () => Promise.reject(boom) });
    const error = await Runtime.start(failing, { directory: tempDir() }).then(
      () => undefined,
      (e: unknown) => e as Error & { code: string },
    );
    expect(error).toMatchObject({ code: "INITIALIZE_FAILED", message: "The application's initialize() failed: the bank is closed" });
    expect(error!.cause).toBe(boom);
  });

  test("something thrown that is not an Error is given as text", async () => {
    const failing = new Application({
      servicers: [jobServicer()],
      initialize: () => {
        throw "closed for the day";
      },
    });
    await expect(Runtime.start(failing, { directory: tempDir() })).rejects.toMatchObject({
      code: "INITIALIZE_FAILED",
      message: "The application's initialize() failed: closed for the day",
    });
  });

  test("its calls run as an external caller named initialize, once per store", async () => {
    const directory = tempDir();
    const seen: { kind: string; stateId: string }[] = [];
    const once = new Application({
      servicers: [jobServicer(), CounterServicer],
      initialize: async (ctx) => {
        seen.push({ kind: ctx.kind, stateId: ctx.stateId });
        await Counter.ref("made").increment(ctx, {});
      },
    });
    const rt = await Runtime.start(once, { directory });
    await rt.stop({ graceMs: 0 });
    const again = await start(once, { directory });
    expect(seen).toEqual([{ kind: "external", stateId: "initialize" }]);
    expect(await Counter.ref("made").get(again.context(), {})).toEqual({ count: 1 });
  });
});

describe("versions", () => {
  test("each load without a name is the store's next number, after the last run's; the event says so", async () => {
    const directory = tempDir();
    const first = await Runtime.start(app, { directory });
    expect(first.version).toBe("v1");
    expect((await first.load(app)).version).toBe("v2");
    await first.stop({ graceMs: 0 });

    const rt = await start(app, { directory });
    expect(rt.version).toBe("v3");
    const loaded = next<{ version: string; retrying: number }>(rt, "version:loaded");
    const { version, retrying } = await rt.load(app);
    expect(version).toBe("v4");
    expect(rt.version).toBe("v4");
    expect(await loaded).toEqual({ version: "v4", retrying: retrying.length });
  });

  test("a load's event counts the failing tasks it retries", async () => {
    let fixed = false;
    const flaky = new Application({
      // Retried by the load only: a backoff that ended first (a busy machine) would retry it before.
      retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: false },
      servicers: [
        jobServicer(() => {
          if (!fixed) throw new Error("not yet");
        }),
        CounterServicer,
      ],
    });
    const rt = await start(flaky);
    const failed = next(rt, "attempt:end", (e: { outcome: string }) => e.outcome === "FAILED");
    await Job.ref("j").spawn().work(rt.context(), {});
    await failed;
    fixed = true;
    const loaded = next<{ version: string; retrying: number }>(rt, "version:loaded");
    const { retrying } = await rt.load(flaky, "fixed");
    expect(retrying).toHaveLength(1);
    expect(await loaded).toEqual({ version: "fixed", retrying: 1 });
    expect(rt.version).toBe("fixed");
  });

  test("a listener taken off with the function on() gives back hears nothing more", async () => {
    const rt = await start(app);
    const heard: string[] = [];
    const off = rt.on("version:loaded", ({ version }) => heard.push(version));
    await rt.load(app, "a");
    off();
    await rt.load(app, "b");
    expect(heard).toEqual(["a"]);
  });
});

describe("contexts and tokens", () => {
  test("an external context is named by its caller, or 'external'", async () => {
    const rt = await start(app);
    expect(rt.context()).toMatchObject({ kind: "external", stateId: "external" });
    expect(rt.context("nightly script")).toMatchObject({ kind: "external", stateId: "nightly script" });
    expect(rt.context({ name: "by options" })).toMatchObject({ stateId: "by options" });
  });

  test("a token becomes ctx.auth by the tokenVerifier; no token or no verifier is no auth", async () => {
    const asked: string[] = [];
    const withVerifier = new Application({
      servicers: [jobServicer()],
      tokenVerifier: (token) => {
        asked.push(token);
        return token === "good" ? { userId: "ann" } : undefined;
      },
    });
    const rt = await start(withVerifier);
    expect(await rt.verifyToken("good")).toEqual({ userId: "ann" });
    expect(await rt.verifyToken("bad")).toBeUndefined();
    expect(await rt.verifyToken(undefined)).toBeUndefined();
    expect(asked).toEqual(["good", "bad"]);

    const plain = await start(app);
    expect(await plain.verifyToken("good")).toBeUndefined();
  });

  test("hasAuthorizer says which state types decide their own calls; authorize refuses what the authorizer refuses", async () => {
    const guarded = new Application({
      servicers: [
        jobServicer(),
        Counter.servicer({
          increment: async (ctx, state) => ({ count: ++state.count }),
          get: async (ctx, state) => ({ count: state.count }),
          authorizer: () => deny("counters are private"),
        }),
      ],
    });
    const rt = await start(guarded);
    expect(rt.hasAuthorizer("Counter")).toBe(true);
    expect(rt.hasAuthorizer("Job")).toBe(false);
    await expect(rt.authorize({ stateType: "Counter", stateId: "c", method: "get" }, {}, {})).rejects.toMatchObject({ code: "PERMISSION_DENIED" });
    await expect(rt.authorize({ stateType: "Job", stateId: "j", method: "get" }, {}, {})).resolves.toBeUndefined();
  });
});

describe("calls from outside", () => {
  test("a call whose signal is already aborted does not run its method's change", async () => {
    const rt = await start(app);
    const gone = new AbortController();
    gone.abort(new Error("the client went away"));
    await expect(rt.call({ stateType: "Counter", stateId: "c", method: "increment" }, {}, gone.signal)).rejects.toThrow();
    expect(await Counter.ref("c").get(rt.context(), {})).toEqual({ count: 0 });
  });
});

describe("a task's record and its line in a list", () => {
  test("an unknown uuid is TASK_NOT_FOUND", async () => {
    const rt = await start(app);
    await expect(rt.getTask("00000000-0000-0000-0000-000000000000")).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
  });

  test("a completed task has its response, and its attempt no error", async () => {
    const rt = await start(app);
    const { task } = await Job.ref("j").spawn().work(rt.context(), { label: "x" });
    await rt.wait(task.taskId);
    const { task: info, attempts } = await rt.getTask(task.taskId.taskUuid);
    expect(info).toMatchObject({ status: "COMPLETED", request: { label: "x" }, response: { runs: 1 } });
    expect(info).not.toHaveProperty("error");
    expect(attempts).toEqual([expect.objectContaining({ number: 1, outcome: "COMPLETED", error: null })]);

    const [line] = await rt.listTasks({ limit: 10 });
    expect(line!.request).toEqual({ bytes: JSON.stringify({ label: "x" }).length, preview: JSON.stringify({ label: "x" }) });
    expect(line!.response).toEqual({ bytes: JSON.stringify({ runs: 1 }).length, preview: JSON.stringify({ runs: 1 }) });
    expect(line).not.toHaveProperty("error");
  });

  test("a task ended by a declared error has that error, and no response", async () => {
    const rt = await start(app);
    const { task } = await Job.ref("j").spawn().fails(rt.context(), {});
    await rt.wait(task.taskId).catch(() => {});
    const { task: info, attempts } = await rt.getTask(task.taskId.taskUuid);
    const declared = { type: "Refused", reason: "no", code: 7 };
    expect(info.status).toBe("ABORTED");
    expect(info).not.toHaveProperty("response");
    expect(info.error).toEqual(declared);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]!.outcome).toBe("ABORTED");

    const [line] = await rt.listTasks({ limit: 10 });
    expect(line!.error).toEqual({ bytes: JSON.stringify(declared).length, preview: JSON.stringify(declared) });
    expect(line).not.toHaveProperty("response");
  });

  test("a failed attempt has its error's class, message and stack", async () => {
    const failing = new Application({
      servicers: [
        jobServicer(() => {
          throw new RangeError("out of range");
        }),
      ],
    });
    const rt = await start(failing);
    const failed = next(rt, "attempt:end", (e: { outcome: string }) => e.outcome === "FAILED");
    const { task } = await Job.ref("j").spawn().work(rt.context(), {});
    await failed;
    const { task: info, attempts } = await rt.getTask(task.taskId.taskUuid);
    expect(info.lastError).toBe("RangeError: out of range");
    expect(info).not.toHaveProperty("response");
    expect(info).not.toHaveProperty("error");
    expect(attempts[0]!.error).toMatchObject({ name: "RangeError", message: "out of range", stack: expect.stringContaining("out of range") });
  });

  test("an attempt that failed with an error without a message still has its class", async () => {
    const failing = new Application({
      servicers: [
        jobServicer(() => {
          throw new TypeError();
        }),
      ],
    });
    const rt = await start(failing);
    const failed = next(rt, "attempt:end", (e: { outcome: string }) => e.outcome === "FAILED");
    const { task } = await Job.ref("j").spawn().work(rt.context(), {});
    await failed;
    const { attempts } = await rt.getTask(task.taskId.taskUuid);
    expect(attempts[0]!.error).toMatchObject({ name: "TypeError" });
  });
});
