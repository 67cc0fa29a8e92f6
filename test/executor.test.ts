// How methods run: which kind of method may call which, what a writer schedules, and what
// effect validation reports when a method's two runs differ.
import { afterEach, describe, expect, test, vi } from "vitest";
import { Application, defineApi, z } from "mend";
import { compareRuns, type Witnessed } from "../src/runtime/executor.js";
import { start, within } from "./helpers/runtimes.js";

const { Box } = defineApi({
  Box: {
    state: { n: z.number().default(0) },
    methods: {
      /** Calls `what` on Box('other'), and returns what it returned. */
      readerCalls: { kind: "reader", request: { what: z.string() }, response: { got: z.string() } },
      writerCalls: { kind: "writer", request: { what: z.string() }, response: { got: z.string() } },
      transactionCalls: { kind: "transaction", request: { what: z.string() }, response: { got: z.string() } },
      workflowCalls: { kind: "workflow", request: { what: z.string() }, response: { got: z.string() } },
      read: { kind: "reader", request: {}, response: { got: z.string() } },
      write: { kind: "writer", request: {}, response: { got: z.string() } },
      transact: { kind: "transaction", request: {}, response: { got: z.string() } },
      flow: { kind: "workflow", request: {}, response: { got: z.string() } },
      /** Schedules `write` on Box('later') now. */
      schedules: { kind: "writer", request: {}, response: z.void() },
      get: { kind: "reader", request: {}, response: { n: z.number() } },
    },
  },
});

type Ctx = Parameters<Parameters<typeof Box.servicer>[0]["read"]>[0];

async function callOther(ctx: Ctx, what: string): Promise<{ got: string }> {
  const other = Box.ref("other");
  if (what === "read") return other.read(ctx);
  if (what === "write") return other.write(ctx);
  if (what === "transact") return other.transact(ctx);
  return other.flow(ctx);
}

const app = new Application({
  servicers: [
    Box.servicer({
      async readerCalls(ctx, state, req) {
        return callOther(ctx, req.what);
      },
      async writerCalls(ctx, state, req) {
        return callOther(ctx, req.what);
      },
      async transactionCalls(ctx, state, req) {
        return callOther(ctx, req.what);
      },
      async workflowCalls(ctx, req) {
        return callOther(ctx, req.what);
      },
      async read() {
        return { got: "read" };
      },
      async write(ctx, state) {
        state.n += 1;
        return { got: "write" };
      },
      async transact(ctx, state) {
        state.n += 10;
        return { got: "transact" };
      },
      async flow() {
        return { got: "flow" };
      },
      async schedules(ctx) {
        await Box.ref("later").schedule().write(ctx);
      },
      async get(ctx, state) {
        return { n: state.n };
      },
    }),
  ],
});

afterEach(() => {
  vi.useRealTimers();
});

describe("which kind of method may call which", () => {
  const kinds = ["read", "write", "transact", "flow"] as const;
  const allowed: Record<string, readonly string[]> = {
    reader: ["read"],
    writer: ["read"],
    transaction: ["read", "write", "transact"],
    workflow: ["read", "write", "transact", "flow"],
  };
  const names: Record<string, string> = { read: "reader", write: "writer", transact: "transaction", flow: "workflow" };

  test.each(Object.keys(allowed))("a %s calls what it may, and is refused the rest, naming both", async (caller) => {
    const rt = await start(app);
    const ctx = rt.context();
    for (const what of kinds) {
      const call = async () => {
        const box = Box.ref(`${caller}-${what}`);
        if (caller === "reader") return box.readerCalls(ctx, { what });
        if (caller === "writer") return box.writerCalls(ctx, { what });
        if (caller === "transaction") return box.transactionCalls(ctx, { what });
        const { task } = await box.spawn().workflowCalls(ctx, { what });
        return task;
      };
      if (allowed[caller]!.includes(what)) await expect(call(), `${caller} calling ${what}`).resolves.toEqual({ got: what });
      else {
        await expect(call(), `${caller} calling ${what}`).rejects.toThrow(`A ${caller} cannot call the ${names[what]} Box.${what}.`);
      }
    }
    // What the allowed writers and transactions changed was kept.
    const expected = (allowed[caller]!.includes("write") ? 1 : 0) + (allowed[caller]!.includes("transact") ? 10 : 0);
    expect((await Box.ref("other").get(ctx)).n).toBe(expected);
  });

  test("from outside, every kind may be called", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    expect(await Box.ref("x").read(ctx)).toEqual({ got: "read" });
    expect(await Box.ref("x").write(ctx)).toEqual({ got: "write" });
    expect(await Box.ref("x").transact(ctx)).toEqual({ got: "transact" });
    expect(await Box.ref("x").flow(ctx)).toEqual({ got: "flow" });
  });
});

describe("every kind as a task", () => {
  test("a reader, writer, transaction and workflow task each end COMPLETED in the store, with their response", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    const box = Box.ref("t");
    const tasks = [
      (await box.spawn().read(ctx)).task,
      (await box.spawn().write(ctx)).task,
      (await box.spawn().transact(ctx)).task,
      (await box.spawn().flow(ctx)).task,
    ];
    expect(await within(Promise.all(tasks), "the four tasks")).toEqual([{ got: "read" }, { got: "write" }, { got: "transact" }, { got: "flow" }]);
    for (const [i, task] of tasks.entries()) {
      const { task: info } = await rt.getTask(task.taskId.taskUuid);
      expect(info, `task ${i}`).toMatchObject({ status: "COMPLETED", response: { got: ["read", "write", "transact", "flow"][i] } });
    }
  });
});

describe("what a writer schedules", () => {
  test("is due at once when it commits: it runs without the clock moving", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: new Date("2026-01-01T00:00:00Z") });
    const rt = await start(app);
    const ctx = rt.context();
    const ran = new Promise<void>((resolve) => rt.on("task:finished", (e) => e.taskId.stateId === "later" && resolve()));
    await Box.ref("s").schedules(ctx);
    // The clock stands still: only the window's timers could run it otherwise, and they do not fire.
    await within(ran, "the scheduled task to run");
    expect(await Box.ref("later").get(ctx)).toEqual({ n: 1 });
  });
});

describe("effect validation's report of two runs", () => {
  const run = (over: Partial<Witnessed["did"]> = {}): Witnessed => ({
    input: "[]",
    did: { response: "COMPLETED {}", writes: [], tasks: [], ...over },
  });

  test("runs that did the same thing differ in nothing", () => {
    const same = run({ writes: [["Box('a')", '{"n":1}']], tasks: ["Box('b').write({}) in 0 ms"] });
    expect(compareRuns(same, run({ writes: [["Box('a')", '{"n":1}']], tasks: ["Box('b').write({}) in 0 ms"] }))).toEqual([]);
  });

  test("names each difference: the response, a state left differently or changed on one run only, the tasks", () => {
    const first = run({
      response: 'COMPLETED {"n":1}',
      writes: [
        ["Box('a')", '{"n":1}'],
        ["Box('gone')", '{"n":5}'],
      ],
      tasks: ["Box('b').write({}) in 0 ms"],
    });
    const second = run({
      response: 'COMPLETED {"n":2}',
      writes: [
        ["Box('a')", '{"n":2}'],
        ["Box('new')", '{"n":7}'],
      ],
      tasks: ["Box('b').write({}) in 0 ms", "Box('c').write({}) in 5 ms"],
    });
    expect(compareRuns(first, second)).toEqual([
      'its response differs (first COMPLETED {"n":1}, then COMPLETED {"n":2})',
      `it left Box('a') differently (first {"n":1}, then {"n":2})`,
      `it left Box('new') differently (first unchanged, then {"n":7})`,
      "only its first run changed Box('gone')",
      "it scheduled different tasks (first [Box('b').write({}) in 0 ms], then [Box('b').write({}) in 0 ms, Box('c').write({}) in 5 ms])",
    ]);
  });

  test("tasks in another order differ; long values are cut at 120 characters", () => {
    const a = "Box('a').write({}) in 0 ms";
    const b = "Box('b').write({}) in 0 ms";
    expect(compareRuns(run({ tasks: [a, b] }), run({ tasks: [b, a] }))).toEqual([`it scheduled different tasks (first [${a}, ${b}], then [${b}, ${a}])`]);
    // One task, or two whose texts make the same one together, are not the same tasks.
    expect(compareRuns(run({ tasks: ["xy"] }), run({ tasks: ["x", "y"] }))).toHaveLength(1);
    const long = `COMPLETED "${"x".repeat(200)}"`;
    const [line] = compareRuns(run({ response: long }), run());
    expect(line).toBe(`its response differs (first ${long.slice(0, 119)}…, then COMPLETED {})`);
    expect(compareRuns(run({ response: "x".repeat(120) }), run())[0]).toBe(`its response differs (first ${"x".repeat(120)}, then COMPLETED {})`);
  });
});

const { Vault, Mover } = defineApi({
  Vault: {
    state: { owner: z.string(), n: z.number().default(0) },
    methods: {
      create: { kind: "writer", factory: {}, request: { owner: z.string() }, response: z.void() },
      add: { kind: "writer", request: {}, response: { n: z.number() } },
      addTx: { kind: "transaction", request: {}, response: { n: z.number() } },
      get: { kind: "reader", request: {}, response: { owner: z.string(), n: z.number() } },
    },
  },
  Mover: {
    state: {},
    methods: {
      /** Constructs Vault(id) and adds to it, in one transaction. */
      setup: { kind: "transaction", request: { id: z.string() }, response: { n: z.number() } },
      /** Calls `via` on Vault(id), which does not exist; says what it was refused with. */
      missing: { kind: "transaction", request: { id: z.string(), via: z.enum(["add", "addTx", "create twice"]) }, response: { refused: z.string() } },
    },
  },
});

const vaults = new Application({
  servicers: [
    Vault.servicer({
      async create(ctx, state, req) {
        state.owner = req.owner;
      },
      async add(ctx, state) {
        state.n += 1;
        return { n: state.n };
      },
      async addTx(ctx, state) {
        state.n += 10;
        return { n: state.n };
      },
      async get(ctx, state) {
        return { owner: state.owner, n: state.n };
      },
    }),
    Mover.servicer({
      async setup(ctx, state, req) {
        await Vault.ref(req.id).create(ctx, { owner: "mover" });
        return Vault.ref(req.id).add(ctx);
      },
      async missing(ctx, state, req) {
        try {
          if (req.via === "add") await Vault.ref(req.id).add(ctx);
          else if (req.via === "addTx") await Vault.ref(req.id).addTx(ctx);
          else {
            await Vault.ref(req.id).create(ctx, { owner: "first" });
            await Vault.ref(req.id).create(ctx, { owner: "second" });
          }
          return { refused: "" };
        } catch (e) {
          return { refused: (e as Error).name };
        }
      },
    }),
  ],
});

describe("constructors, inside a transaction", () => {
  test("an instance constructed earlier in the transaction can be called; constructing it again is refused", async () => {
    const rt = await start(vaults);
    const ctx = rt.context();
    expect(await Mover.ref("m").setup(ctx, { id: "v" })).toEqual({ n: 1 });
    expect(await Vault.ref("v").get(ctx)).toEqual({ owner: "mover", n: 1 });
    expect(await Mover.ref("m").missing(ctx, { id: "w", via: "create twice" })).toEqual({ refused: "StateAlreadyConstructed" });
    // The first construction stays: the transaction caught the refusal and completed.
    expect(await Vault.ref("w").get(ctx)).toEqual({ owner: "first", n: 0 });
  });

  test.each(["add", "addTx"] as const)("%s on an instance never constructed is refused with StateNotConstructed, which the caller can catch", async (via) => {
    const rt = await start(vaults);
    const ctx = rt.context();
    expect(await Mover.ref("m").missing(ctx, { id: "nothing", via })).toEqual({ refused: "StateNotConstructed" });
    await expect(Vault.ref("nothing").get(ctx)).rejects.toMatchObject({ name: "StateNotConstructed" });
  });
});
