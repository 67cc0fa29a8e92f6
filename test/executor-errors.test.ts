// What a method run ends with when something is wrong: an unknown target, a bad request or
// response, a declared error of another method that escapes, a kind doing what it may not,
// a workflow reading or writing an instance never constructed. Each is a clear error.
import { describe, expect, test } from "vitest";
import { Application, defineApi, TaskId, z } from "mend";
import { next, start } from "./helpers/runtimes.js";

const FULL = z.object({ type: z.literal("Full"), size: z.number() });

const { Shelf, Locker } = defineApi({
  Shelf: {
    state: { items: z.array(z.string()).default([]) },
    methods: {
      put: { kind: "writer", request: { item: z.string() }, response: { count: z.number() } },
      badResponse: { kind: "reader", request: {}, response: { n: z.number() } },
      refuses: { kind: "writer", request: {}, response: z.void(), errors: [FULL] },
      /** Ends with its own declared error's class, carrying a value its schema refuses. */
      refusesBadly: { kind: "writer", request: {}, response: z.void(), errors: [FULL] },
      /** Calls refuses on Shelf('other') and lets its error escape; declares nothing. */
      relays: { kind: "transaction", request: {}, response: z.void() },
      /** The same, declaring the same error. */
      relaysDeclared: { kind: "transaction", request: {}, response: z.void(), errors: [FULL] },
      /** A reader that tries to start a task. */
      startsTask: { kind: "reader", request: {}, response: z.void() },
      /** A transaction that schedules put on Shelf('later'), and puts one itself. */
      schedules: { kind: "transaction", request: {}, response: z.void() },
      /** Reads or writes Locker(id), never constructed. */
      readsLocker: { kind: "workflow", request: { id: z.string() }, response: z.void() },
      writesLocker: { kind: "workflow", request: { id: z.string() }, response: z.void() },
      get: { kind: "reader", request: {}, response: { items: z.array(z.string()) } },
    },
  },
  Locker: {
    state: { owner: z.string() },
    methods: {
      open: { kind: "writer", factory: {}, request: { owner: z.string() }, response: z.void() },
    },
  },
});

const app = new Application({
  // A task that fails is retried by hand here, never by a backoff that ends during the test.
  retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: false },
  servicers: [
    Shelf.servicer({
      async put(ctx, state, req) {
        state.items.push(req.item);
        return { count: state.items.length };
      },
      async badResponse() {
        return { n: "seven" } as unknown as { n: number };
      },
      async refuses() {
        throw new Shelf.RefusesAborted({ type: "Full", size: 3 });
      },
      async refusesBadly() {
        throw new Shelf.RefusesBadlyAborted({ type: "Full", size: "big" } as unknown as { type: "Full"; size: number });
      },
      async relays(ctx) {
        await Shelf.ref("other").refuses(ctx);
      },
      async relaysDeclared(ctx) {
        await Shelf.ref("other").refuses(ctx);
      },
      async startsTask(ctx) {
        await Shelf.ref("x").spawn().put(ctx, { item: "no" });
      },
      async schedules(ctx, state) {
        await Shelf.ref("later").schedule().put(ctx, { item: "scheduled" });
        state.items.push("now");
      },
      async readsLocker(ctx, req) {
        await Locker.ref(req.id).read(ctx);
      },
      async writesLocker(ctx, req) {
        await Locker.ref(req.id).write(ctx, (state) => {
          state.owner = "someone";
        });
      },
      async get(ctx, state) {
        return { items: state.items };
      },
    }),
    Locker.servicer({
      async open(ctx, state, req) {
        state.owner = req.owner;
      },
    }),
  ],
});

describe("unknown targets and bad values", () => {
  test("an unknown state type, and an unknown method of a known one, are NOT_FOUND naming which", async () => {
    const rt = await start(app);
    await expect(rt.call({ stateType: "Cupboard", stateId: "c", method: "put" }, {})).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: "Unknown state type Cupboard.",
    });
    await expect(rt.call({ stateType: "Shelf", stateId: "s", method: "take" }, {})).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: "Unknown method Shelf.take.",
    });
  });

  test("a request that does not match its schema is INVALID_ARGUMENT, naming the method and the field", async () => {
    const rt = await start(app);
    const error = await rt.call({ stateType: "Shelf", stateId: "s", method: "put" }, { item: 5 }).then(
      () => undefined,
      (e: unknown) => e as Error & { code: string },
    );
    expect(error).toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(error!.message).toMatch(/^Invalid request for Shelf\.put: /);
    expect(error!.message).toContain("item");
  });

  test("a response that does not match its schema is INVALID_RESPONSE, naming the method", async () => {
    const rt = await start(app);
    const error = await Shelf.ref("s")
      .badResponse(rt.context())
      .then(
        () => undefined,
        (e: unknown) => e as Error & { code: string },
      );
    expect(error).toMatchObject({ code: "INVALID_RESPONSE" });
    expect(error!.message).toMatch(/^Shelf\.badResponse returned a response that does not match its schema: /);
    expect(error!.message).toContain("n");
  });
});

describe("declared errors of a method called", () => {
  test("one that escapes a caller that does not declare it fails the caller, saying what to do", async () => {
    const rt = await start(app);
    const error = await Shelf.ref("s")
      .relays(rt.context())
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(error).toBeInstanceOf(Error);
    expect(error!.name).toBe("MethodFailed");
    expect(error!.message).toBe(
      `Shelf.relays let the declared error {"type":"Full","size":3} of Shelf.refuses escape, and does not declare it: ` +
        "declare it in Shelf.relays's errors to end with RelaysAborted, or catch it.",
    );
  });

  test("a method's own error class carrying a value its schema refuses is UNDECLARED_ERROR", async () => {
    const rt = await start(app);
    await expect(Shelf.ref("s").refusesBadly(rt.context())).rejects.toMatchObject({
      code: "UNDECLARED_ERROR",
      message: `Shelf.refusesBadly aborted with an error it does not declare: {"type":"Full","size":"big"}`,
    });
  });

  test("one that the caller declares too ends the caller with it, as its own", async () => {
    const rt = await start(app);
    await expect(Shelf.ref("s").relaysDeclared(rt.context())).rejects.toMatchObject({
      name: "RelaysDeclaredAborted",
      error: { type: "Full", size: 3 },
    });
    const { task } = await Shelf.ref("s").spawn().relaysDeclared(rt.context());
    await expect(task).rejects.toMatchObject({ error: { type: "Full", size: 3 } });
    expect((await rt.getTask(task.taskId.taskUuid)).task).toMatchObject({ status: "ABORTED", error: { type: "Full", size: 3 } });
  });
});

describe("what a kind may do", () => {
  test("a reader cannot start a task, and is told who can", async () => {
    const rt = await start(app);
    await expect(Shelf.ref("s").startsTask(rt.context())).rejects.toMatchObject({
      name: "NotAllowed",
      message: "A reader cannot start tasks; a writer or transaction can schedule() them.",
    });
    expect(await rt.listTasks({ limit: 10 })).toEqual([]);
  });

  test("a transaction's scheduled task is made with its commit, due at once", async () => {
    const rt = await start(app);
    const done = next(rt, "attempt:end", (e: { method: string }) => e.method === "put");
    await Shelf.ref("s").schedules(rt.context());
    expect(await Shelf.ref("s").get(rt.context())).toEqual({ items: ["now"] });
    const [task] = await rt.listTasks({ method: "put", limit: 10 });
    expect(task).toMatchObject({ taskId: { stateType: "Shelf", stateId: "later" } });
    await done;
    expect(await Shelf.ref("later").get(rt.context())).toEqual({ items: ["scheduled"] });
  });
});

describe("a workflow and an instance never constructed", () => {
  test.each(["readsLocker", "writesLocker"] as const)("%s ends the task with StateNotConstructed, naming the constructor", async (method) => {
    const rt = await start(app);
    const { task } = await Shelf.ref("s").spawn()[method](rt.context(), { id: "none" });
    await expect(task).rejects.toMatchObject({ name: "StateNotConstructed" });
    const { task: info } = await rt.getTask(task.taskId.taskUuid);
    expect(info.status).toBe("ABORTED");
    expect(JSON.stringify(info.error)).toContain("open");
  });
});

describe("effect validation", () => {
  const { Clock } = defineApi({
    Clock: {
      state: { n: z.number().default(0) },
      methods: {
        /** Schedules tick on Clock('later') a little later on each run (a counter in memory). */
        schedulesDrifting: { kind: "writer", request: {}, response: z.void() },
        tick: { kind: "writer", request: {}, response: z.void() },
        /** A transaction that calls tick on Clock('inner'). */
        callsTick: { kind: "transaction", request: {}, response: z.void() },
      },
    },
  });
  let runs = 0;
  let ticks = 0;
  const clocks = new Application({
    servicers: [
      Clock.servicer({
        async schedulesDrifting(ctx) {
          runs += 1;
          await Clock.ref("later").schedule({ when: { secs: 3600 + runs } }).tick(ctx);
        },
        async tick(ctx, state) {
          ticks += 1;
          state.n += 1;
        },
        async callsTick(ctx) {
          await Clock.ref("inner").tick(ctx);
        },
      }),
    ],
  });

  test("a writer whose two runs schedule different tasks is named, with both", async () => {
    const rt = await start(clocks, { effectValidation: "quiet" });
    const seen: { method: string; differences: string[] }[] = [];
    rt.on("effect-validation", (e) => seen.push(e));
    runs = 0;
    await Clock.ref("c").schedulesDrifting(rt.context());
    expect(seen).toEqual([
      {
        method: "Clock.schedulesDrifting",
        message: expect.stringMatching(/^Clock\.schedulesDrifting did not do the same thing on its two runs/),
        differences: [`it scheduled different tasks (first [Clock('later').tick({}) in 3601000 ms], then [Clock('later').tick({}) in 3602000 ms])`],
      },
    ]);
    // Only the second run's task was kept.
    expect((await rt.listTasks({ method: "tick", limit: 10 })).map((t) => t.dueAt! - t.createdAt)).toEqual([3_602_000]);
  });

  test("a call inside a transaction runs as part of it: validated with it, not on its own", async () => {
    const rt = await start(clocks, { effectValidation: "enabled" });
    const seen: string[] = [];
    rt.on("effect-validation", (e) => seen.push(e.method));
    ticks = 0;
    await Clock.ref("c").callsTick(rt.context());
    expect(seen).toEqual(["Clock.callsTick"]);
    // Two runs of the transaction, one call of tick in each; the first rolled back.
    expect(ticks).toBe(2);
    expect(await rt.call({ stateType: "Clock", stateId: "inner", method: "tick" }, {})).toMatchObject({ status: "COMPLETED" });
    expect(ticks).toBe(4);
  });
});

describe("what a method's context says", () => {
  const { Probe } = defineApi({
    Probe: {
      state: { seen: z.array(z.string()).default([]) },
      methods: {
        read: { kind: "reader", request: {}, response: { kind: z.string(), type: z.string(), id: z.string() } },
        write: { kind: "writer", request: {}, response: { kind: z.string(), type: z.string(), id: z.string() } },
        transact: { kind: "transaction", request: {}, response: { kind: z.string(), type: z.string(), id: z.string(), inner: z.string() } },
        flow: { kind: "workflow", request: {}, response: { kind: z.string(), type: z.string(), id: z.string() } },
        /** A reader or writer that waits for the task named: refused. */
        readerWaits: { kind: "reader", request: { taskId: z.string() }, response: z.void() },
        writerWaits: { kind: "writer", request: { taskId: z.string() }, response: z.void() },
      },
    },
  });
  const said = (ctx: { kind: string; stateType: string; stateId: string }) => ({ kind: ctx.kind, type: ctx.stateType, id: ctx.stateId });
  const probes = new Application({
    servicers: [
      Probe.servicer({
        async read(ctx) {
          return said(ctx);
        },
        async write(ctx) {
          return said(ctx);
        },
        async transact(ctx) {
          // A writer called inside the transaction, on another instance, sees a writer's context.
          const inner = await Probe.ref("inner").write(ctx);
          return { ...said(ctx), inner: `${inner.kind} ${inner.type}('${inner.id}')` };
        },
        async flow(ctx) {
          return said(ctx);
        },
        async readerWaits(ctx, state, req) {
          await Probe.ReadTask.retrieve(ctx, { taskId: req.taskId });
        },
        async writerWaits(ctx, state, req) {
          await Probe.ReadTask.retrieve(ctx, { taskId: req.taskId });
        },
      }),
    ],
  });

  test("its kind, state type and id, in each kind of method, called and as a task", async () => {
    const rt = await start(probes);
    const ctx = rt.context();
    expect(await Probe.ref("p").read(ctx)).toEqual({ kind: "reader", type: "Probe", id: "p" });
    expect(await Probe.ref("p").write(ctx)).toEqual({ kind: "writer", type: "Probe", id: "p" });
    expect(await Probe.ref("p").transact(ctx)).toEqual({ kind: "transaction", type: "Probe", id: "p", inner: "writer Probe('inner')" });
    expect(await Probe.ref("p").flow(ctx)).toEqual({ kind: "workflow", type: "Probe", id: "p" });
    const tasks = await Promise.all([Probe.ref("t").spawn().read(ctx), Probe.ref("t").spawn().write(ctx), Probe.ref("t").spawn().transact(ctx)]);
    expect(await Promise.all(tasks.map(({ task }) => task))).toEqual([
      { kind: "reader", type: "Probe", id: "t" },
      { kind: "writer", type: "Probe", id: "t" },
      { kind: "transaction", type: "Probe", id: "t", inner: "writer Probe('inner')" },
    ]);
  });

  test.each(["readerWaits", "writerWaits"] as const)("%s: only a workflow may wait for a task", async (method) => {
    const rt = await start(probes);
    const { task } = await Probe.ref("p").spawn().read(rt.context());
    await task;
    const kind = method === "readerWaits" ? "reader" : "writer";
    await expect(Probe.ref("p")[method](rt.context(), { taskId: TaskId.format(task.taskId) })).rejects.toMatchObject({
      name: "NotAllowed",
      message: `A ${kind} cannot wait for a task; a workflow can.`,
    });
  });
});
