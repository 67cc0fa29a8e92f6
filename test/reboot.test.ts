// Reboot's semantics where mend used to differ (issue 14), in-process: one describe per
// part of the issue, one test per rule. Over HTTP, as tasks and across processes:
// test/reboot-http.test.ts; Reboot's own bank example: test/reboot-bank.test.ts.
import { describe, expect, test } from "vitest";
import {
  Application,
  defineApi,
  IdempotencyConflict,
  MendError,
  MethodFailed,
  NotAllowed,
  PermissionDenied,
  Runtime,
  StateAlreadyConstructed,
  StateNotConstructed,
  z,
  type TaskId,
} from "mend";
import { Cell, Flow, Guarded, Ledger, Relay, Tx } from "./apps/reboot/src/api.js";
import { app, type At } from "./apps/reboot/src/main.js";
import { Account } from "../fixtures/reboot-bank/src/api.js";
import bank from "../fixtures/reboot-bank/src/main.js";
import { newStore } from "./helpers/stores.js";
import { next, start, within } from "./helpers/runtimes.js";

/** Counts the points the app passes; `bugs[point]` throws there that many times. */
function points(bugs: Record<string, number> = {}) {
  const seen: { point: string; detail?: Record<string, unknown> }[] = [];
  const at: At = (point, detail) => {
    if ((bugs[point] ?? 0) > 0) {
      bugs[point]!--;
      throw new Error(`bug at ${point}`);
    }
    seen.push({ point, ...(detail ? { detail } : {}) });
  };
  return { at, seen, count: (point: string) => seen.filter((s) => s.point === point).length };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("1. constructors", () => {
  test("Type.method(ctx, id, req) constructs and gives [ref, response]; ref(id).method works too", async () => {
    const rt = await start(app());
    const ctx = rt.context();
    const [ledger, response] = await Ledger.open(ctx, "l1", { owner: "ann" });
    expect(ledger.stateId).toBe("l1");
    expect(response).toEqual({ opened: "l1" });
    expect(await ledger.add(ctx, { n: 5 })).toEqual({ total: 5 });
    expect(await Ledger.ref("l2").open(ctx, { owner: "bo" })).toEqual({ opened: "l2" });
    expect(await Ledger.ref("l2").total(ctx)).toEqual({ owner: "bo", total: 0 });
  });

  test("without an id, a new uuid-like id is made for each construction", async () => {
    const rt = await start(app());
    const ctx = rt.context();
    const [a] = await Ledger.open(ctx, { owner: "ann" });
    const [b] = await Ledger.open(ctx, { owner: "ann" });
    expect(a.stateId).toMatch(UUID);
    expect(b.stateId).toMatch(UUID);
    expect(a.stateId).not.toBe(b.stateId);
    expect(await a.total(ctx)).toEqual({ owner: "ann", total: 0 });
  });

  test("any other method on an instance never constructed fails StateNotConstructed, naming it, and writes nothing", async () => {
    const rt = await start(app());
    const ctx = rt.context();
    for (const call of [() => Ledger.ref("ghost").total(ctx), () => Ledger.ref("ghost").add(ctx, { n: 1 })]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StateNotConstructed);
      expect(error).toMatchObject({ code: "STATE_NOT_CONSTRUCTED", stateType: "Ledger", stateId: "ghost", constructors: ["open"] });
      expect((error as Error).message).toBe("Ledger('ghost') has not been constructed: call one of its constructors first (Ledger.open).");
    }
    // Still not constructed: the failed writer left no row behind.
    await expect(Ledger.open(ctx, "ghost", { owner: "late" })).resolves.toEqual([expect.anything(), { opened: "ghost" }]);
  });

  test("a constructor on an instance that exists fails StateAlreadyConstructed and changes nothing", async () => {
    const rt = await start(app());
    const ctx = rt.context();
    await Ledger.open(ctx, "l", { owner: "ann" });
    const error = await Ledger.open(ctx, "l", { owner: "eve" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StateAlreadyConstructed);
    expect((error as Error).message).toBe("Ledger('l') has already been constructed.");
    expect(await Ledger.ref("l").total(ctx)).toEqual({ owner: "ann", total: 0 });
  });

  test("as a task, StateNotConstructed ends the task ABORTED, not retried, and revives as the same class after a restart", async () => {
    const store = await newStore();
    const first = await Runtime.start(app(), store);
    const { task } = await Ledger.ref("ghost").spawn().add(first.context(), { n: 1 });
    await expect(task).rejects.toBeInstanceOf(StateNotConstructed);
    expect((await first.getTask(task.taskId.taskUuid)).task.status).toBe("ABORTED");
    expect((await first.getTask(task.taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["ABORTED"]);
    await first.stop();
    const second = await start(app(), store);
    await expect(Ledger.AddTask.retrieve(second.context(), { taskId: task.taskId })).rejects.toBeInstanceOf(StateNotConstructed);
  });

  test("state fields without defaults are checked when the constructor commits", async () => {
    const rt = await start(app());
    const error = await Ledger.open(rt.context(), "l", { owner: "" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MendError);
    expect((error as MendError).message).toMatch(/^Ledger\.open left the state of Ledger\('l'\) not matching its schema:[\s\S]*owner/);
    await expect(Ledger.ref("l").total(rt.context())).rejects.toBeInstanceOf(StateNotConstructed);
  });

  test("a constructor called .idempotently() twice with the same key gives the first result, also without an id", async () => {
    const p = points();
    const rt = await start(app(p.at));
    const seed = "ctor-seed";
    const [a, first] = await Ledger.idempotently("mine").open(rt.context({ idempotencySeed: seed }), { owner: "ann" });
    const [b, again] = await Ledger.idempotently("mine").open(rt.context({ idempotencySeed: seed }), { owner: "ann" });
    expect(b.stateId).toBe(a.stateId);
    expect(again).toEqual(first);
    const [c] = await Ledger.ref("named").idempotently("named").open(rt.context({ idempotencySeed: seed }), { owner: "x" }).then((r) => [r]);
    expect(c).toEqual({ opened: "named" });
    await Ledger.ref("named").idempotently("named").open(rt.context({ idempotencySeed: seed }), { owner: "x" });
    expect(p.count("open")).toBe(2);
  });

  test("initialize runs once per store; a crash inside it reruns it without constructing twice", async () => {
    const store = await newStore();
    let runs = 0;
    const initialize = async (ctx: Parameters<NonNullable<ConstructorParameters<typeof Application>[0]["initialize"]>>[0]) => {
      runs++;
      await Ledger.open(ctx, "singleton", { owner: "app" });
      const [made] = await Ledger.open(ctx, { owner: "app" });
      await made.add(ctx, { n: 1 });
      if (runs === 1) throw new Error("the first run dies half-way");
    };
    const base = app();
    const withInit = () => new Application({ servicers: base.servicers, initialize });
    await expect(Runtime.start(withInit(), store)).rejects.toThrow("The application's initialize() failed: the first run dies half-way");
    const rt = await start(withInit(), store);
    expect(runs).toBe(2);
    expect(await Ledger.ref("singleton").total(rt.context())).toEqual({ owner: "app", total: 0 });
    await rt.stop();
    await start(withInit(), store);
    expect(runs).toBe(2);
  });

  test("a declaration with an unknown key is refused when the app loads, naming the key", () => {
    const load = (decl: unknown) => () => defineApi(decl as never);
    expect(load({ T: { state: {}, methods: { m: { kind: "writer", erors: [] } } } })).toThrow(
      "The declaration of T.m has an unknown key 'erors' (it may have kind, factory, request, response, errors, retry, timeout).",
    );
    expect(load({ T: { sttae: {}, methods: {} } })).toThrow("The declaration of T has an unknown key 'sttae' (it may have state, methods).");
    expect(load({ T: { state: {}, methods: { m: { kindd: "reader" } } } })).toThrow("unknown key 'kindd'");
    expect(load({ T: { state: {}, methods: { m: { kind: "reader", factory: {} } } } })).toThrow(
      "T.m: only a writer or a transaction may be a constructor (factory: {}), not a reader.",
    );
  });
});

describe("2. a transaction may call another transaction", () => {
  test("a nested transaction's writes across three instances commit with the outer one", async () => {
    const rt = await start(app());
    const ctx = rt.context();
    await Tx.ref("outer").fanout(ctx, { cells: ["a", "b", "c"] });
    for (const id of ["a", "b", "c"]) expect(await Cell.ref(id).get(ctx)).toEqual({ n: 1 });
  });

  test("…and roll back together when the outer one throws", async () => {
    const rt = await start(app());
    const ctx = rt.context();
    await expect(Tx.ref("outer").fanout(ctx, { cells: ["a", "b", "c"], fail: true })).rejects.toThrow("the outer transaction fails after its nested one");
    for (const id of ["a", "b", "c"]) expect(await Cell.ref(id).get(ctx)).toEqual({ n: 0 });
    expect(await rt.listTasks({ limit: 10 })).toEqual([]);
  });

  test("a nested transaction that ends with a declared error its caller catches leaves none of its writes", async () => {
    const rt = await start(app());
    const ctx = rt.context();
    await Tx.ref("outer").tolerant(ctx, { cells: ["a", "b"], kept: "k" });
    expect(await Cell.ref("a").get(ctx)).toEqual({ n: 0 });
    expect(await Cell.ref("b").get(ctx)).toEqual({ n: 0 });
    expect(await Cell.ref("k").get(ctx)).toEqual({ n: 1 });
  });

  test("nested transactions that take the same instances, in either order, all finish", async () => {
    const rt = await start(app());
    const ctx = rt.context();
    const orders = [["a", "b", "c"], ["c", "b", "a"], ["b", "a", "c"], ["a", "c", "b"]];
    await within(Promise.all(Array.from({ length: 20 }, (_, i) => Tx.ref(`outer-${i}`).fanout(ctx, { cells: orders[i % 4]! }))), "20 nested transactions");
    for (const id of ["a", "b", "c"]) expect(await Cell.ref(id).get(ctx)).toEqual({ n: 20 });
  });
});

describe("3. declared errors pass through a caller that declares them", () => {
  test("in-process: the caller ends with its own <Method>Aborted and the same .error", async () => {
    const rt = await start(app());
    const error = await Tx.ref("t").pass(rt.context(), { cells: ["a"] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Tx.PassAborted);
    expect(error).not.toBeInstanceOf(Tx.InnerAborted);
    expect((error as InstanceType<typeof Tx.PassAborted>).error).toEqual({ type: "Refused", by: "inner" });
    expect(await Cell.ref("a").get(rt.context())).toEqual({ n: 0 });
  });

  test("in-process: a caller that does not declare it fails unexpectedly (MethodFailed), not with the nested class", async () => {
    const rt = await start(app());
    const error = await Tx.ref("t").nopass(rt.context(), { cells: ["a"] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MethodFailed);
    expect(error).not.toBeInstanceOf(Tx.InnerAborted);
    expect((error as MethodFailed).remoteName).toBe("InnerAborted");
    expect((error as Error).message).toMatch(/^Tx\.nopass let the declared error \{"type":"Refused","by":"inner"\} of Tx\.inner escape, and does not declare it/);
  });

  test("as a task: the declaring caller ends ABORTED with its class (also after a restart); the other is retried", async () => {
    const store = await newStore();
    const first = await Runtime.start(app(), store);
    const ctx = first.context();
    const { task: passing } = await Tx.ref("t").spawn().pass(ctx, { cells: ["a"] });
    await expect(passing).rejects.toBeInstanceOf(Tx.PassAborted);
    expect((await first.getTask(passing.taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["ABORTED"]);

    // The passing task's own attempt:end may come after its result (on PostgreSQL its waiter hears of the end first).
    const failed = next<{ taskId: TaskId; method: string; outcome: string; error?: Error }>(first, "attempt:end", (e) => e.method === "nopass");
    const { task: failing } = await Tx.ref("t").spawn().nopass(ctx, { cells: ["a"] });
    const end = await failed;
    expect([end.taskId.taskUuid, end.outcome, end.error?.name]).toEqual([failing.taskId.taskUuid, "FAILED", "MethodFailed"]);
    expect((await first.getTask(failing.taskId.taskUuid)).task.status).toBe("SCHEDULED_RETRY");
    await first.stop();

    const second = await start(app(), store);
    const revived = await Tx.PassTask.retrieve(second.context(), { taskId: passing.taskId }).then(undefined, (e: unknown) => e);
    expect(revived).toBeInstanceOf(Tx.PassAborted);
    expect((revived as InstanceType<typeof Tx.PassAborted>).error).toEqual({ type: "Refused", by: "inner" });
  });
});

describe("4. .idempotently() from a runtime context", () => {
  test("a call runs once per seed and alias; a new context with the same seed gets the recorded response", async () => {
    const p = points();
    const rt = await start(app(p.at));
    const ctx = rt.context({ idempotencySeed: "s1" });
    expect(await Cell.ref("a").idempotently("deposit").add(ctx, { by: 5 })).toEqual({ n: 5 });
    expect(await Cell.ref("a").idempotently("deposit").add(ctx, { by: 5 })).toEqual({ n: 5 });
    expect(await Cell.ref("a").idempotently("deposit").add(rt.context({ idempotencySeed: "s1" }), { by: 5 })).toEqual({ n: 5 });
    // Another seed is another key.
    expect(await Cell.ref("a").idempotently("deposit").add(rt.context({ idempotencySeed: "s2" }), { by: 5 })).toEqual({ n: 10 });
    expect(p.count("add")).toBe(2);
  });

  test("concurrent calls with one key run once", async () => {
    const p = points();
    const rt = await start(app(p.at));
    const ctx = rt.context({ idempotencySeed: "s" });
    const results = await Promise.all(Array.from({ length: 5 }, () => Cell.ref("a").idempotently("k").add(ctx)));
    expect(results).toEqual(Array.from({ length: 5 }, () => ({ n: 1 })));
    expect(p.count("add")).toBe(1);
  });

  test("without an alias, each call is its own key, from the context's call order", async () => {
    const p = points();
    const rt = await start(app(p.at));
    const calls = async (ctx: ReturnType<typeof rt.context>) => [
      await Cell.ref("a").idempotently().add(ctx, { by: 1 }),
      await Cell.ref("a").idempotently().add(ctx, { by: 1 }),
    ];
    expect(await calls(rt.context({ idempotencySeed: "order" }))).toEqual([{ n: 1 }, { n: 2 }]);
    expect(await calls(rt.context({ idempotencySeed: "order" }))).toEqual([{ n: 1 }, { n: 2 }]);
    expect(p.count("add")).toBe(2);
  });

  test("a declared error is recorded and thrown again without running", async () => {
    const p = points();
    const rt = await start(app(p.at));
    const ctx = rt.context({ idempotencySeed: "s" });
    await expect(Tx.ref("t").idempotently("p").pass(ctx, { cells: ["c"] })).rejects.toBeInstanceOf(Tx.PassAborted);
    await expect(Tx.ref("t").idempotently("p").pass(ctx, { cells: ["c"] })).rejects.toBeInstanceOf(Tx.PassAborted);
    expect(p.count("add")).toBe(1);
  });

  test("the same alias with another request (or method) is an error that says so", async () => {
    const rt = await start(app());
    const ctx = rt.context({ idempotencySeed: "s" });
    await Cell.ref("a").idempotently("k").add(ctx, { by: 1 });
    const error = await Cell.ref("a").idempotently("k").add(ctx, { by: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdempotencyConflict);
    expect((error as Error).message).toBe(
      `The idempotency key 'k' (seed 's') was used for Cell('a').add({"by":1}); this call is Cell('a').add({"by":2}). A key stands for one call: give this one another alias.`,
    );
    await expect(Cell.ref("b").idempotently("k").add(ctx, { by: 1 })).rejects.toBeInstanceOf(IdempotencyConflict);
    expect(await Cell.ref("a").get(ctx)).toEqual({ n: 1 });
  });

  test("a spawn with a key gives the same task every time", async () => {
    const rt = await start(app());
    const ctx = rt.context({ idempotencySeed: "s" });
    const { task: a } = await Cell.ref("a").idempotently("sp").spawn().add(ctx);
    const { task: b } = await Cell.ref("a").idempotently("sp").spawn().add(rt.context({ idempotencySeed: "s" }));
    expect(b.taskId).toEqual(a.taskId);
    expect(await b).toEqual({ n: 1 });
    expect(await rt.listTasks({ limit: 10 })).toHaveLength(1);
  });
});

describe("5. smaller API gaps", () => {
  test("Type.ref() inside a method is its own instance; from outside it is refused", async () => {
    // Account.open schedules its interest with Account.ref(): the task is on the account itself.
    const rt = await start(bank);
    await Account.open(rt.context(), "acc-1");
    expect((await rt.listTasks({ limit: 10 })).map((t) => [t.taskId.stateId, t.method])).toEqual([["acc-1", "interest"]]);
    await expect(Cell.ref().add(rt.context())).rejects.toBeInstanceOf(NotAllowed);
    await expect(Cell.ref().add(rt.context())).rejects.toThrow("Cell.ref() with no id names the instance of the Cell method that calls it; this context is from outside the application: give an id, Cell.ref(id).");
  });

  test("Account.State and the request and response schemas are on the type", () => {
    expect(Ledger.State.parse({ owner: "o" })).toEqual({ owner: "o", entries: [] });
    expect(Ledger.AddRequest.parse({ n: 2 })).toEqual({ n: 2 });
    expect(Ledger.TotalResponse.safeParse({ owner: 1 }).success).toBe(false);
  });

  test("in a workflow, read() is memoised and write() is an inline writer that runs once", async () => {
    const p = points({ "after-write": 1 });
    const rt = await start(app(p.at, { retry: { initialMs: 0 } }));
    const ctx = rt.context();
    await Cell.ref("c").add(ctx, { by: 2 });
    const { task } = await Flow.ref("f").spawn().readWrite(ctx, { cell: "c" });
    expect(await task).toEqual({ before: 2, after: 12 });
    expect(p.count("write")).toBe(1);
    expect(await Cell.ref("c").get(ctx)).toEqual({ n: 12 });
    expect((await rt.getTask(task.taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["FAILED", "COMPLETED"]);
  });

  test(".perWorkflow() runs once per workflow, .idempotently() once per iteration, .always() every time", async () => {
    let failed = false;
    const at: At = (point, detail) => {
      if (point === "iteration" && detail?.i === 1 && !failed) {
        failed = true;
        throw new Error("bug in iteration 1");
      }
    };
    const rt = await start(app(at, { retry: { initialMs: 0 } }));
    const { task } = await Flow.ref("f").spawn().modes(rt.context());
    await task;
    const ctx = rt.context();
    expect(await Cell.ref("per-workflow").get(ctx)).toEqual({ n: 1 });
    expect(await Cell.ref("each").get(ctx)).toEqual({ n: 3 });
    // Iteration 1 ran twice: `always` called again on its retry.
    expect(await Cell.ref("always").get(ctx)).toEqual({ n: 4 });
  });

  test("until re-evaluates when a state it read is written, not on a timer; its schema checks the value", async () => {
    let checks = 0;
    let firstCheck!: () => void;
    const checked = new Promise<void>((resolve) => (firstCheck = resolve));
    const at: At = (point) => {
      if (point === "check" && ++checks === 1) firstCheck();
    };
    const rt = await start(app(at));
    const ctx = rt.context();
    const { task } = await Flow.ref("f").spawn().waitFor(ctx, { cell: "w", atLeast: 3 });
    await checked;
    await Cell.ref("other").add(ctx);
    await Cell.ref("w").add(ctx, { by: 3 });
    // maxInterval is an hour: only the write to Cell('w') can have woken it.
    expect(await within(task, "until to see the write")).toEqual({ n: 3 });
    expect(checks).toBe(2);

    // The first task's own attempt:end may come after its result (on PostgreSQL its waiter hears of the end first).
    const failedStep = next<{ method: string; error?: Error }>(rt, "attempt:end", (e) => e.method === "badUntil");
    await Flow.ref("f").spawn().badUntil(ctx);
    expect((await failedStep).error?.message).toMatch(/^The value of until\("typed"\) does not match its schema:/);
  });

  test("a constructor without an id in a workflow gets the same id on every retry", async () => {
    const p = points({ made: 1 });
    const rt = await start(app(p.at, { retry: { initialMs: 0 } }));
    const { task } = await Flow.ref("f").spawn().makeLedger(rt.context());
    const { id, again } = await task;
    expect(id).toMatch(UUID);
    expect(again).not.toBe(id);
    expect(p.count("open")).toBe(2);
    expect(await Ledger.ref(id).total(rt.context())).toEqual({ owner: "workflow", total: 0 });
  });

  test("authorizers: a denied call from outside is PermissionDenied; tokens become ctx.auth; calls inside are not checked again", async () => {
    const rt = await start(app());
    const anonymous = rt.context();
    const admin = rt.context({ bearerToken: "t-admin" });
    expect(await Guarded.ref("g").get(anonymous)).toEqual({ n: 0, userId: null });
    const denied = await Guarded.ref("g").set(anonymous, { n: 1 }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(PermissionDenied);
    expect((denied as Error).message).toBe("only admin-user may call Guarded.set");
    await expect(Guarded.ref("g").set(rt.context({ bearerToken: "t-bob" }), { n: 1 })).rejects.toThrow("bob may only read");
    await expect(Guarded.ref("g").spawn().later(anonymous)).rejects.toBeInstanceOf(PermissionDenied);
    expect(await rt.listTasks({ limit: 10 })).toEqual([]);

    await Guarded.ref("g").set(admin, { n: 2 });
    expect(await Guarded.ref("g").get(admin)).toEqual({ n: 2, userId: "admin-user" });
    // Relay has no authorizer; its call of Guarded.set is inside the application.
    await Relay.ref("r").relay(anonymous, { id: "g", n: 3 });
    expect(await Guarded.ref("g").get(anonymous)).toEqual({ n: 3, userId: null });
  });
});

void z;
