// What the dashboard, the CLI and the server read of a store (src/runtime/inspector.ts): a
// workflow's steps with large values cut, state types (also those only the store still has)
// and their instances, one instance's state, tasks per status, and rerunning a workflow from
// a step: who asked, what it forgot, and each way it is refused.
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, test } from "vitest";
import { Application, atLeastOnce, defineApi, startServer, z, type RunningServer, type Runtime, type TaskId } from "mend";
import { RerunRefused, type Inspector } from "../src/runtime/inspector.js";
import { PipelineServicer } from "./apps/steps/src/main.js";
import { next, start, within } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

const { Doc, Block } = defineApi({
  Doc: {
    state: { text: z.string().default("") },
    methods: {
      fill: { kind: "writer", request: { size: z.number() }, response: z.void() },
      build: { kind: "workflow", request: { size: z.number() }, response: { length: z.number() } },
    },
  },
  /** Holds a slot while the test wants it held. */
  Block: {
    state: {},
    methods: { hold: { kind: "writer", request: {}, response: z.void() } },
  },
});

/** The app: the steps app's Pipeline, Doc, and Block, whose `hold` waits until `release()`. */
function world() {
  let release = () => {};
  let held = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const holding = new Promise<void>((resolve) => (held = resolve));
  const app = new Application({
    servicers: [
      PipelineServicer,
      Doc.servicer({
        async fill(ctx, state, req) {
          state.text = "x".repeat(req.size);
        },
        async build(ctx, req) {
          const big = await atLeastOnce("big", ctx, async () => "x".repeat(req.size));
          await atLeastOnce("small", ctx, async () => ({ ok: true }));
          return { length: big.length };
        },
      }),
      Block.servicer({
        async hold() {
          held();
          await released;
        },
      }),
    ],
  });
  return { app, holding, release: () => release() };
}

/** Spawns Pipeline(id).method and waits for its attempt `attempt` to end. */
async function spawnAndWait(rt: Runtime, id: string, method: "run" | "poll", request: unknown, attempt = 1): Promise<TaskId> {
  const ended = next<{ taskId: TaskId; attempt: number }>(rt, "attempt:end", (e) => e.taskId.stateId === id && e.attempt === attempt);
  const taskId = await rt.spawn({ stateType: "Pipeline", stateId: id, method }, request);
  await ended;
  return taskId;
}

/** The runtime's inspector (internal: the package's types leave it out). */
const inspect = (rt: Runtime) => (rt as unknown as { inspector: Inspector }).inspector;

const NO_TASK = "00000000-0000-4000-8000-000000000000";

describe("a workflow's steps", () => {
  test("a value over 64 KiB is sent as its size and first characters, not whole; a small one whole", async () => {
    const rt = await start(world().app);
    const size = 70_000;
    const { task } = await Doc.ref("d").spawn().build(rt.context(), { size });
    expect(await task).toEqual({ length: size });
    const [big, small, ...rest] = await inspect(rt).steps(task.taskId.taskUuid);
    expect(rest).toEqual([]);
    expect(big).toEqual({
      alias: "big",
      kind: "atLeastOnce",
      step: "atLeastOnce()",
      status: "completed",
      cut: { bytes: size + 2, preview: `"${"x".repeat(199)}` },
      recordedAt: expect.any(Number),
      attempt: 1,
    });
    expect(big).not.toHaveProperty("value");
    expect(small).toEqual({ alias: "small", kind: "atLeastOnce", step: "atLeastOnce()", status: "completed", value: { ok: true }, recordedAt: expect.any(Number), attempt: 1 });
    expect(small).not.toHaveProperty("cut");
  });

  test("of a task that does not exist: TASK_NOT_FOUND", async () => {
    const rt = await start(world().app);
    await expect(inspect(rt).steps(NO_TASK)).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
  });
});

describe("state types, instances and counts", () => {
  test("a type only the store has is listed after the code's, without methods; counts stop at 10000 and say there are more", async () => {
    const directory = tempDir();
    const first = await start(world().app, { directory });
    await Doc.ref("d").fill(first.context(), { size: 1 });
    await first.stop({ graceMs: 0 });
    // A store written by an older version of the app: types it no longer has, many instances and finished tasks.
    const db = new Database(join(directory, "mend.sqlite"));
    try {
      const state = db.prepare("INSERT INTO states (state_type, state_id, state) VALUES (?, ?, '{}')");
      const task = db.prepare(
        "INSERT INTO tasks (uuid, state_type, state_id, method, request, status, created_at, updated_at) VALUES (?, 'Gone', 'g', 'old', '{}', ?, 0, 0)",
      );
      db.transaction(() => {
        for (let i = 0; i < 10_000; i++) state.run("Exact", `e${i}`);
        for (let i = 0; i < 10_001; i++) state.run("Over", `o${i}`);
        for (let i = 0; i < 10_000; i++) task.run(`00000000-0000-4000-8000-${String(i).padStart(12, "0")}`, "COMPLETED");
        for (let i = 0; i < 10_001; i++) task.run(`00000000-0000-4000-9000-${String(i).padStart(12, "0")}`, "CANCELLED");
      })();
    } finally {
      db.close();
    }
    const rt = await start(world().app, { directory });
    expect(await inspect(rt).stateTypes()).toEqual([
      {
        name: "Pipeline",
        inCode: true,
        instances: 0,
        more: false,
        methods: [
          { name: "bump", kind: "writer" },
          { name: "runs", kind: "reader" },
          { name: "run", kind: "workflow" },
          { name: "poll", kind: "workflow" },
        ],
      },
      { name: "Doc", inCode: true, instances: 1, more: false, methods: [{ name: "fill", kind: "writer" }, { name: "build", kind: "workflow" }] },
      { name: "Block", inCode: true, instances: 0, more: false, methods: [{ name: "hold", kind: "writer" }] },
      { name: "Exact", inCode: false, instances: 10_000, more: false, methods: [] },
      { name: "Over", inCode: false, instances: 10_000, more: true, methods: [] },
    ]);
    expect(await inspect(rt).counts()).toEqual({
      SCHEDULED: { count: 0, more: false },
      STARTED: { count: 0, more: false },
      SCHEDULED_RETRY: { count: 0, more: false },
      SCHEDULED_ITERATION: { count: 0, more: false },
      COMPLETED: { count: 10_000, more: false },
      ABORTED: { count: 0, more: false },
      CANCELLED: { count: 10_000, more: true },
    });
  });

  test("instances come in pages in id order: without a prefix or a start, from the first; `next` is the page's last id", async () => {
    const rt = await start(world().app);
    const ctx = rt.context();
    for (const id of ["3", "1", "4", "2"]) await Doc.ref(id).fill(ctx, { size: Number(id) });
    const first = await inspect(rt).instances("Doc", { limit: 3 });
    expect(first).toEqual({
      instances: [
        { stateId: "1", bytes: 12, preview: '{"text":"x"}' },
        { stateId: "2", bytes: 13, preview: '{"text":"xx"}' },
        { stateId: "3", bytes: 14, preview: '{"text":"xxx"}' },
      ],
      next: "3",
    });
    const second = await inspect(rt).instances("Doc", { limit: 3, after: first.next! });
    expect(second).toEqual({ instances: [{ stateId: "4", bytes: 15, preview: '{"text":"xxxx"}' }], next: null });
  });

  test("a state over 1 MiB is sent as its size and first 2000 characters unless asked for whole; one of exactly 1 MiB whole", async () => {
    const rt = await start(world().app);
    const ctx = rt.context();
    const MiB = 1024 * 1024;
    // {"text":"…"} is 11 bytes around the text.
    await Doc.ref("exact").fill(ctx, { size: MiB - 11 });
    await Doc.ref("over").fill(ctx, { size: MiB - 10 });
    expect(await inspect(rt).state("Doc", "exact")).toEqual({ exists: true, bytes: MiB, state: { text: "x".repeat(MiB - 11) } });
    const cut = await inspect(rt).state("Doc", "over");
    expect(cut).toEqual({ exists: true, bytes: MiB + 1, cut: { bytes: MiB + 1, preview: `{"text":"${"x".repeat(1991)}` } });
    expect(cut).not.toHaveProperty("state");
    expect(await inspect(rt).state("Doc", "over", true)).toEqual({ exists: true, bytes: MiB + 1, state: { text: "x".repeat(MiB - 10) } });
    expect(await inspect(rt).state("Doc", "nobody")).toEqual({ exists: false, bytes: 0 });
  });
});

describe("rerun from a step", () => {
  test("in an earlier iteration of a loop: the history and the task:rerun event say who asked, what was forgotten and where the loop went back to", async () => {
    const rt = await start(world().app);
    const taskId = await spawnAndWait(rt, "f", "poll", { iterations: 3 }, 3);
    // Told before rerun returns.
    const heard: unknown[] = [];
    const off = rt.on("task:rerun", (e) => heard.push(e));
    const forgotten = ["poll[1]/tick", "poll[2]/tick"];
    expect(await rt.rerun(taskId.taskUuid, "poll[1]/tick", "cli")).toEqual({ forgotten, spawns: [], loop: { alias: "poll", iteration: 1 } });
    off();
    expect(heard).toEqual([{ taskId: { stateType: "Pipeline", stateId: "f", taskUuid: taskId.taskUuid }, fromStep: "poll[1]/tick", forgotten, by: "cli" }]);
    expect(await inspect(rt).history(taskId.taskUuid)).toEqual([
      { at: expect.any(Number), action: "rerun", by: "cli", detail: { fromStep: "poll[1]/tick", forgotten, loop: { alias: "poll", iteration: 1 } } },
    ]);
  });

  test("of a task that does not exist: TASK_NOT_FOUND", async () => {
    const rt = await start(world().app);
    await expect(rt.rerun(NO_TASK, "first")).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
  });

  test("of a finished task is refused as finished, whatever the step", async () => {
    const rt = await start(world().app);
    const { task } = await Doc.ref("d").spawn().build(rt.context(), { size: 1 });
    await task;
    const error = await rt.rerun(task.taskId.taskUuid, "no such step").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RerunRefused);
    expect(error).toMatchObject({ name: "RerunRefused", code: "FINISHED", message: expect.stringMatching(/^Task has finished \(COMPLETED\); a finished task cannot be rerun/) });
  });

  test("of a task due now and waiting for a slot is refused as about to run, and forgets nothing", async () => {
    const w = world();
    const rt = await start(w.app, { concurrency: 1 });
    const taskId = await spawnAndWait(rt, "b", "run", {});
    const before = await inspect(rt).steps(taskId.taskUuid);
    // The one slot is held; the task, retried now, waits for it.
    const { task: blocker } = await Block.ref("x").spawn().hold(rt.context());
    await within(w.holding, "the blocker to hold the slot");
    // It is due at once; a retry is refused (false) once it waits for the slot.
    while (await rt.retry(taskId.taskUuid)) await new Promise((resolve) => setImmediate(resolve));
    const error = await rt.rerun(taskId.taskUuid, "second").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RerunRefused);
    expect(error).toMatchObject({
      code: "RUNNING",
      message: "Task is about to run, or ran since its steps were read; rerun from a step once its attempt has ended.",
    });
    expect(await inspect(rt).steps(taskId.taskUuid)).toEqual(before);
    expect(await inspect(rt).history(taskId.taskUuid)).toEqual([]);
    const second = next<{ taskId: TaskId; attempt: number }>(rt, "attempt:end", (e) => e.taskId.taskUuid === taskId.taskUuid && e.attempt === 2);
    w.release();
    await blocker;
    await second;
  });

  describe("over HTTP", () => {
    const servers: RunningServer[] = [];
    afterEach(async () => {
      for (const s of servers.splice(0)) await s.close();
    });

    test("the server takes `by` as cli or api, and the history records it", async () => {
      const rt = await start(world().app);
      const server = await startServer(rt, { port: 0 });
      servers.push(server);
      const taskId = await spawnAndWait(rt, "h", "run", {});
      for (const [by, attempt] of [["cli", 2], ["api", 3]] as const) {
        const ended = next<{ taskId: TaskId; attempt: number }>(rt, "attempt:end", (e) => e.taskId.taskUuid === taskId.taskUuid && e.attempt === attempt);
        const answer = await fetch(`${server.url}/v1/tasks/${taskId.taskUuid}/rerun`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ fromStep: "second", by }),
        });
        expect(answer.status).toBe(200);
        await ended;
      }
      expect((await inspect(rt).history(taskId.taskUuid)).map((h) => h.by)).toEqual(["cli", "api"]);
    });
  });
});
