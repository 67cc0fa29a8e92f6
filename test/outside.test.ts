// Calls from outside the application (src/runtime/outside.ts): the authorizer is asked with
// the validated request and never for the application itself; a call or spawn with an
// idempotency key runs once, its record says what it was for, and a key used for another
// call is refused with an error that shows both; `initialize` is recorded once it ran.
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, test } from "vitest";
import { allow, Application, defineApi, deny, IdempotencyConflict, PermissionDenied, z } from "mend";
import { Engine } from "../src/runtime/engine.js";
import { Executor } from "../src/runtime/executor.js";
import { Outside } from "../src/runtime/outside.js";
import { States } from "../src/runtime/states.js";
import { CodeVersion } from "../src/runtime/version.js";
import { DEFAULT_WINDOW } from "../src/runtime/window.js";
import { armFault, disarmFaults } from "../src/store/faults.js";
import { SqliteStore } from "../src/store/sqlite-store.js";
import { start, within } from "./helpers/runtimes.js";
import { onPostgres } from "./helpers/stores.js";
import { tempDir } from "./helpers/temp.js";

const Refused = z.object({ type: z.literal("Refused"), why: z.string() });

const { Cell, Vault } = defineApi({
  /** No authorizer. */
  Cell: {
    state: { n: z.number().default(0) },
    methods: {
      add: { kind: "writer", request: { by: z.number().default(1), note: z.string().default("") }, response: { n: z.number() } },
      reset: { kind: "writer", request: {}, response: z.void() },
      refuse: { kind: "writer", request: {}, response: z.void(), errors: [Refused] },
      crash: { kind: "writer", request: {}, response: z.void() },
      echo: { kind: "writer", request: { size: z.number() }, response: { text: z.string() } },
      hold: { kind: "writer", request: {}, response: { n: z.number() } },
      get: { kind: "reader", request: {}, response: { n: z.number() } },
    },
  },
  /** An authorizer that lets only the admin write, and records what it was asked. */
  Vault: {
    state: { n: z.number().default(0) },
    methods: {
      deposit: { kind: "writer", request: { by: z.number().default(1) }, response: { n: z.number() } },
      later: { kind: "workflow", request: { by: z.number().default(1) }, response: { done: z.boolean() } },
    },
  },
});

/** What the app's methods do and saw: runs per method, the authorizer's questions, a hold for `hold`. */
function world() {
  const runs: Record<string, number> = {};
  const asked: { method: string; request: unknown; userId: string | null }[] = [];
  let broken = true;
  let release = () => {};
  let held = () => {};
  const holding = new Promise<void>((resolve) => (held = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const ran = (method: string) => (runs[method] = (runs[method] ?? 0) + 1);
  const app = (options: { initialize?: Application["initialize"] } = {}) =>
    new Application({
      tokenVerifier: (token) => (token === "t-admin" ? { userId: "admin" } : undefined),
      ...(options.initialize ? { initialize: options.initialize } : {}),
      servicers: [
        Cell.servicer({
          async add(ctx, state, req) {
            ran("add");
            state.n += req.by;
            return { n: state.n };
          },
          async reset(ctx, state) {
            ran("reset");
            state.n = 0;
          },
          async refuse() {
            ran("refuse");
            throw new Cell.RefuseAborted({ type: "Refused", why: "the cell says no" });
          },
          async crash(ctx, state) {
            ran("crash");
            state.n = -1;
            if (broken) throw new Error("the cell is broken");
          },
          async echo(ctx, state, req) {
            ran("echo");
            state.n += 1;
            return { text: "y".repeat(req.size) };
          },
          async hold(ctx, state) {
            ran("hold");
            held();
            await released;
            state.n += 1;
            return { n: state.n };
          },
          async get(ctx, state) {
            return { n: state.n };
          },
        }),
        Vault.servicer({
          authorizer: ({ method, request, auth }) => {
            asked.push({ method, request, userId: auth?.userId ?? null });
            return auth?.userId === "admin" ? allow() : deny(`only the admin may call Vault.${method}`);
          },
          async deposit(ctx, state, req) {
            ran("deposit");
            state.n += req.by;
            return { n: state.n };
          },
          async later(ctx, req) {
            ran("later");
            return { done: req.by > 0 };
          },
        }),
      ],
    });
  return {
    app,
    runs,
    asked,
    fix: () => (broken = false),
    holding,
    release: () => release(),
  };
}

afterEach(() => disarmFaults());

describe("the authorizer", () => {
  // A client's ref validates its request before sending it; a server passes the body as it came.
  test("is asked with the request as the method gets it (defaults filled in), for a call and a spawn as a server passes them", async () => {
    const w = world();
    const rt = await start(w.app());
    const from = { auth: { userId: "admin" } };
    const deposit = { stateType: "Vault", stateId: "v", method: "deposit" };
    expect(await rt.call(deposit, {}, undefined, from)).toEqual({ status: "COMPLETED", response: { n: 1 } });
    const taskId = await rt.spawn({ stateType: "Vault", stateId: "v", method: "later" }, {}, undefined, from);
    expect(await rt.wait(taskId)).toEqual({ status: "COMPLETED", response: { done: true } });
    expect(w.asked).toEqual([
      { method: "deposit", request: { by: 1 }, userId: "admin" },
      { method: "later", request: { by: 1 }, userId: "admin" },
    ]);
    // A request the schema refuses is refused before the authorizer is asked.
    await expect(rt.call(deposit, { by: "ten" }, undefined, from)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(w.asked).toHaveLength(2);
  });

  test("a spawn it allows, without a key, makes one task that runs; one it denies makes none", async () => {
    const w = world();
    const rt = await start(w.app());
    const { task } = await Vault.ref("v").spawn().deposit(rt.context({ bearerToken: "t-admin" }), { by: 3 });
    expect(await task).toEqual({ n: 3 });
    const denied = await Vault.ref("v").spawn().deposit(rt.context(), { by: 4 }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(PermissionDenied);
    expect((denied as Error).message).toBe("only the admin may call Vault.deposit");
    expect((await rt.listTasks({ limit: 10 })).map((t) => [t.method, t.status])).toEqual([["deposit", "COMPLETED"]]);
    expect(w.runs.deposit).toBe(1);
  });

  test("is not asked about the calls of the application's own initialize", async () => {
    const w = world();
    const rt = await start(
      w.app({
        initialize: async (ctx) => {
          await Vault.ref("v").deposit(ctx, { by: 5 });
        },
      }),
    );
    expect(w.asked).toEqual([]);
    expect(w.runs.deposit).toBe(1);
    // The state it wrote is there; an anonymous caller is still refused.
    await expect(Vault.ref("v").deposit(rt.context(), {})).rejects.toThrow("only the admin may call Vault.deposit");
    expect(await rt.call({ stateType: "Vault", stateId: "v", method: "deposit" }, { by: 0 }, undefined, { trusted: true })).toEqual({
      status: "COMPLETED",
      response: { n: 5 },
    });
  });
});

describe("a call with an idempotency key", () => {
  test("is keyed by the validated request: the same call with its defaults spelled out is the same call", async () => {
    const w = world();
    const rt = await start(w.app());
    const add = { stateType: "Cell", stateId: "a", method: "add" };
    const from = { idempotency: { seed: "s", alias: "k" } };
    expect(await rt.call(add, {}, undefined, from)).toEqual({ status: "COMPLETED", response: { n: 1 } });
    expect(await rt.call(add, { by: 1, note: "" }, undefined, from)).toEqual({ status: "COMPLETED", response: { n: 1 } });
    expect(await rt.spawn(add, {}, { days: 1 }, { idempotency: { seed: "s", alias: "sp" } })).toEqual(
      await rt.spawn(add, { note: "" }, { days: 1 }, { idempotency: { seed: "s", alias: "sp" } }),
    );
    expect(w.runs.add).toBe(1);
  });

  test("a declared error is recorded with its data, and a repeat throws it again without running", async () => {
    const w = world();
    const rt = await start(w.app());
    for (const ctx of [rt.context({ idempotencySeed: "s" }), rt.context({ idempotencySeed: "s" })]) {
      const error = await Cell.ref("a").idempotently("r").refuse(ctx).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Cell.RefuseAborted);
      expect((error as InstanceType<typeof Cell.RefuseAborted>).error).toEqual({ type: "Refused", why: "the cell says no" });
    }
    expect(w.runs.refuse).toBe(1);
  });

  test("a response of nothing is recorded as nothing: the repeat's outcome has no response", async () => {
    const w = world();
    const rt = await start(w.app());
    const target = { stateType: "Cell", stateId: "a", method: "reset" };
    const from = { idempotency: { seed: "s", alias: "reset" } };
    const first = await rt.call(target, {}, undefined, from);
    const again = await rt.call(target, {}, undefined, from);
    expect(first).toEqual({ status: "COMPLETED", response: undefined });
    expect(again).toEqual({ status: "COMPLETED", response: undefined });
    expect(w.runs.reset).toBe(1);
  });

  test("an error that is not declared is not recorded: the call fails with it, and a repeat runs again", async () => {
    const w = world();
    const rt = await start(w.app());
    const ctx = rt.context({ idempotencySeed: "s" });
    await expect(Cell.ref("a").idempotently("c").crash(ctx)).rejects.toThrow("the cell is broken");
    expect(await Cell.ref("a").get(ctx)).toEqual({ n: 0 });
    w.fix();
    await expect(Cell.ref("a").idempotently("c").crash(ctx)).resolves.toBeUndefined();
    expect(await Cell.ref("a").get(ctx)).toEqual({ n: -1 });
    expect(w.runs.crash).toBe(2);
  });

  test("calls with different keys run side by side: one does not wait for the other to end", async () => {
    const w = world();
    const rt = await start(w.app());
    const ctx = rt.context({ idempotencySeed: "s" });
    const holding = Cell.ref("x").idempotently("first").hold(ctx);
    await within(w.holding, "the first call to run");
    expect(await within(Cell.ref("y").idempotently("second").add(ctx), "the second call to end while the first runs")).toEqual({ n: 1 });
    w.release();
    expect(await holding).toEqual({ n: 1 });
  });

  test("a request or a record over maxValueBytes is refused with a message naming it; nothing is written", async () => {
    const w = world();
    const rt = await start(w.app(), { maxValueBytes: 60 });
    const ctx = rt.context({ idempotencySeed: "s" });
    // Without a key the request is not stored: only the state, which stays small.
    expect(await Cell.ref("a").add(ctx, { note: "x".repeat(120) })).toEqual({ n: 1 });
    await expect(Cell.ref("a").idempotently("big").add(ctx, { note: "x".repeat(120) })).rejects.toMatchObject({
      code: "TOO_LARGE",
      message: "The request of Cell.add is 138 B as JSON, over the limit of 60 B (maxValueBytes).",
    });
    expect(await Cell.ref("a").get(ctx)).toEqual({ n: 1 });
    // The declared error fits; its record (the error and its message) does not.
    const refused = (await Cell.ref("a").refuse(ctx).catch((e: unknown) => e)) as InstanceType<typeof Cell.RefuseAborted>;
    expect(refused).toBeInstanceOf(Cell.RefuseAborted);
    const bytes = JSON.stringify({ error: refused.error, message: refused.message }).length;
    expect(bytes).toBeGreaterThan(60);
    await expect(Cell.ref("a").idempotently("refuse").refuse(ctx)).rejects.toMatchObject({
      code: "TOO_LARGE",
      message: `The result of Cell('a').refuse is ${bytes} B as JSON, over the limit of 60 B (maxValueBytes).`,
    });
    expect(w.runs.add).toBe(1);
  });
});

describe("a key used for another call", () => {
  const conflict = (was: string, now: string) =>
    `The idempotency key 'k' (seed 's') was used for ${was}; this call is ${now}. A key stands for one call: give this one another alias.`;

  test("a call, then a spawn: the message says which was the spawn", async () => {
    const rt = await start(world().app());
    const ctx = rt.context({ idempotencySeed: "s" });
    await Cell.ref("a").idempotently("k").add(ctx, { by: 2 });
    const error = await Cell.ref("a").idempotently("k").spawn().add(ctx, { by: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdempotencyConflict);
    expect((error as Error).message).toBe(conflict(`Cell('a').add({"by":2,"note":""})`, `a spawn of Cell('a').add({"by":2,"note":""})`));
  });

  test("a spawn, then a call: the message says which was the spawn", async () => {
    const rt = await start(world().app());
    const ctx = rt.context({ idempotencySeed: "s" });
    await Cell.ref("a").idempotently("k").spawn({ when: { days: 1 } }).add(ctx, { by: 2 });
    const error = await Cell.ref("a").idempotently("k").add(ctx, { by: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdempotencyConflict);
    expect((error as Error).message).toBe(conflict(`a spawn of Cell('a').add({"by":2,"note":""})`, `Cell('a').add({"by":2,"note":""})`));
    expect(await Cell.ref("a").get(ctx)).toEqual({ n: 0 });
  });

  test("a request of 200 characters is shown whole; a longer one is cut to 199 and an ellipsis", async () => {
    const rt = await start(world().app());
    const ctx = rt.context({ idempotencySeed: "s" });
    // {"by":1,"note":"…"} is 18 characters around the note.
    const exact = JSON.stringify({ by: 1, note: "a".repeat(182) });
    expect(exact).toHaveLength(200);
    await Cell.ref("a").idempotently("k").add(ctx, { note: "a".repeat(182) });
    const whole = await Cell.ref("a").idempotently("k").add(ctx, { note: "b".repeat(183) }).catch((e: unknown) => e);
    const longer = JSON.stringify({ by: 1, note: "b".repeat(183) });
    expect((whole as Error).message).toBe(conflict(`Cell('a').add(${exact})`, `Cell('a').add(${longer.slice(0, 199)}…)`));
  });
});

describe("the store's record of each key", () => {
  // Records outlive the process that wrote them: a store initialized by this version must be
  // found initialized by the next, and a key's record must say what it was used for.
  test.skipIf(onPostgres)("says what the key was used for, how it ended and its result; initialize has one of its own", async () => {
    const w = world();
    const directory = tempDir();
    const rt = await start(w.app({ initialize: () => {} }), { directory });
    const ctx = rt.context({ idempotencySeed: "s" });
    await Cell.ref("a").idempotently("add").add(ctx, { by: 2 });
    const refused = (await Cell.ref("a").idempotently("refuse").refuse(ctx).catch((e: unknown) => e)) as Error;
    expect(refused).toBeInstanceOf(Cell.RefuseAborted);
    const { task } = await Cell.ref("a").idempotently("spawn").spawn({ when: { days: 1 } }).add(ctx, {});
    await rt.stop({ graceMs: 0 });
    const db = new Database(join(directory, "mend.sqlite"), { readonly: true });
    try {
      const rows = db.prepare("SELECT seed, alias, kind, step, request, status, value FROM idempotency ORDER BY seed, alias").all();
      expect(rows).toEqual([
        { seed: "mend:initialize", alias: "done", kind: "initialize", step: "initialize()", request: "{}", status: "completed", value: null },
        { seed: "s", alias: "add", kind: "call", step: "Cell('a').add", request: '{"by":2,"note":""}', status: "completed", value: '{"n":2}' },
        {
          seed: "s",
          alias: "refuse",
          kind: "call",
          step: "Cell('a').refuse",
          request: "{}",
          status: "failed",
          value: JSON.stringify({ error: { type: "Refused", why: "the cell says no" }, message: refused.message }),
        },
        { seed: "s", alias: "spawn", kind: "spawn", step: "Cell('a').add", request: '{"by":1,"note":""}', status: "completed", value: JSON.stringify(task.taskId) },
      ]);
    } finally {
      db.close();
    }
  });
});

describe("initialize's record", () => {
  test.skipIf(onPostgres)("a store whose record failed to commit is not initialized: start fails, and the next start runs initialize again", async () => {
    const directory = tempDir();
    let runs = 0;
    const app = world().app({ initialize: () => void runs++ });
    armFault("store.putRecord", "throw", 1, Infinity);
    await expect(start(app, { directory })).rejects.toThrow("disk I/O error (fault injected at store.putRecord)");
    disarmFaults();
    const rt = await start(app, { directory });
    await rt.stop({ graceMs: 0 });
    await start(app, { directory });
    expect(runs).toBe(2);
  });
});

// Two servers on one store, as on PostgreSQL: each has its own Outside (its own record of the
// keys running now) on one store. Built here on one SQLite store, whose group commit puts both
// servers' writes in one batch, and lets the second one's record fail alone.
describe.skipIf(onPostgres)("two servers with one key at the same moment", () => {
  const opened: { engine: Engine; store: SqliteStore }[] = [];
  afterEach(async () => {
    for (const { engine, store } of opened.splice(0)) {
      await engine.stop(0);
      await store.close();
    }
  });

  async function servers() {
    const store = new SqliteStore(join(tempDir(), "mend.sqlite"));
    const engine = new Engine(store, { concurrency: 4, window: DEFAULT_WINDOW });
    opened.push({ engine, store });
    const executor = new Executor(store, new States(store), engine);
    // The app as the sources type it (tests see the package's types).
    const version = new CodeVersion("v1", world().app() as unknown as ConstructorParameters<typeof CodeVersion>[1]);
    engine.attach(executor, version);
    await engine.recover();
    const outside = () => new Outside(store, executor, engine, 1 << 20);
    return { store, version, first: outside(), second: outside() };
  }

  test("spawns: the one whose record commits second gets the first one's task, and there is one task", async () => {
    const { store, version, first, second } = await servers();
    const target = { stateType: "Cell", stateId: "a", method: "add" };
    const from = { idempotency: { seed: "s", alias: "k" } };
    const [a, b] = await Promise.all([
      first.spawn(version, target, { by: 1 }, { days: 1 }, from),
      second.spawn(version, target, { by: 1 }, { days: 1 }, from),
    ]);
    expect(b).toEqual(a);
    expect((await store.listTasks({ limit: 10 })).map((t) => t.uuid)).toEqual([a.taskUuid]);
  });

  test("initialize: the one that records second finds it recorded and goes on", async () => {
    const { first, second } = await servers();
    expect(await first.initialized()).toBe(false);
    await Promise.all([first.markInitialized(), second.markInitialized()]);
    expect(await second.initialized()).toBe(true);
  });
});
