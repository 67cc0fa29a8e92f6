// Time limits and locks: a method that never settles fails at its limit and lets go of its
// instance; transactions on disjoint instances never wait for each other, and two that take
// the same instances in opposite orders both finish.
import { describe, expect, test } from "vitest";
import { Application, DeadlineExceeded, defineApi, z } from "mend";
import { Flow, Shop, app as workflows } from "./apps/workflows.js";
import { next, start, within } from "./helpers/runtimes.js";

const { Slot, Mover } = defineApi({
  Slot: {
    state: { n: z.number().default(0) },
    methods: {
      add: { kind: "writer", request: { by: z.number().default(1) }, response: { n: z.number() } },
      hang: { kind: "writer", request: {}, response: z.void(), timeout: { ms: 100 } },
      get: { kind: "reader", request: {}, response: { n: z.number() } },
    },
  },
  Mover: {
    state: { runs: z.number().default(0) },
    methods: {
      /** Adds to `first`, waits for the test's gate, then adds to `second`. */
      pair: { kind: "transaction", request: { first: z.string(), second: z.string(), gate: z.string() }, response: z.void() },
      hang: { kind: "transaction", request: { slot: z.string() }, response: z.void(), timeout: { ms: 100 } },
    },
  },
});

/** Gates a test opens by name, and what each method run saw. */
function harness() {
  const gates = new Map<string, { open: () => void; opened: Promise<void> }>();
  const gate = (name: string) => {
    if (!gates.has(name)) {
      let open!: () => void;
      const opened = new Promise<void>((resolve) => (open = resolve));
      gates.set(name, { open, opened });
    }
    return gates.get(name)!;
  };
  const arrived = new Map<string, () => void>();
  const arrivals = new Map<string, Promise<void>>();
  const arrival = (name: string) => {
    if (!arrivals.has(name)) arrivals.set(name, new Promise<void>((resolve) => arrived.set(name, resolve)));
    return arrivals.get(name)!;
  };
  const runs: string[] = [];
  const aborted: unknown[] = [];
  const app = (options: { timeout?: { ms: number } } = {}) =>
    new Application({
      ...options,
      servicers: [
        Slot.servicer({
          async add(ctx, state, req) {
            state.n += req.by;
            return { n: state.n };
          },
          async hang(ctx) {
            ctx.signal.addEventListener("abort", () => aborted.push(ctx.signal.reason));
            await new Promise(() => {});
          },
          async get(ctx, state) {
            return { n: state.n };
          },
        }),
        Mover.servicer({
          async pair(ctx, state, req) {
            runs.push(req.gate);
            await Slot.ref(req.first).add(ctx);
            arrival(req.gate);
            arrived.get(req.gate)!();
            await gate(req.gate).opened;
            await Slot.ref(req.second).add(ctx);
            state.runs += 1;
          },
          async hang(ctx, state, req) {
            await Slot.ref(req.slot).add(ctx);
            await new Promise(() => {});
          },
        }),
      ],
    });
  return { app, gate, arrival, runs, aborted };
}

describe("time limits", () => {
  test("a writer that never settles fails at its limit with DeadlineExceeded, its signal aborted, its instance free", async () => {
    const h = harness();
    const rt = await start(h.app());
    const ctx = rt.context();
    const error = await Slot.ref("s").hang(ctx).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeadlineExceeded);
    expect((error as Error).message).toBe("Slot.hang ran past its time limit of 100 ms; it was stopped and changed nothing.");
    expect(h.aborted).toEqual([error]);
    expect(await Slot.ref("s").add(ctx)).toEqual({ n: 1 });
  });

  test("a transaction that never settles lets go of every instance it took, and changes none", async () => {
    const h = harness();
    const rt = await start(h.app());
    const ctx = rt.context();
    await expect(Mover.ref("m").hang(ctx, { slot: "a" })).rejects.toBeInstanceOf(DeadlineExceeded);
    expect(await Slot.ref("a").add(ctx)).toEqual({ n: 1 });
  });

  test("the application's limit applies to methods that declare none; as a task, the attempt fails and is retried", async () => {
    const h = harness();
    const rt = await start(h.app({ timeout: { ms: 50 } }));
    const failed = next<{ error: Error; outcome: string }>(rt, "attempt:end");
    // Mover.pair declares no limit: it waits at its gate past the application's 50 ms.
    const { task } = await Mover.ref("m").spawn().pair(rt.context(), { first: "a", second: "b", gate: "never" });
    const retried = next<{ attempt: number }>(rt, "attempt:start", (e) => e.attempt === 2);
    const ended = await failed;
    expect(ended.outcome).toBe("FAILED");
    expect(ended.error).toBeInstanceOf(DeadlineExceeded);
    await retried;
    expect((await rt.getTask(task.taskId.taskUuid)).attempts[0]).toMatchObject({ outcome: "FAILED", error: { name: "DeadlineExceeded" } });
    expect(await Slot.ref("a").get(rt.context())).toEqual({ n: 0 });
  });

  test("a bad timeout in a declaration is a clear error when the API is defined", () => {
    expect(() =>
      defineApi({ T: { state: {}, methods: { m: { kind: "reader", request: {}, response: z.void(), timeout: { secs: -1 } } } } }),
    ).toThrow("T.m: timeout: `when.secs` must be a finite number >= 0, got -1.");
  });
});

describe("transactions and locks", () => {
  test("transactions on disjoint instances do not wait for each other", async () => {
    const h = harness();
    const rt = await start(h.app());
    const ctx = rt.context();
    const slow = Mover.ref("m1").pair(ctx, { first: "a", second: "b", gate: "slow" });
    await within(h.arrival("slow"), "the first transaction to hold instance a");
    // While the first holds a and waits, a second on c and d runs to its end.
    h.gate("fast").open();
    await within(Mover.ref("m2").pair(ctx, { first: "c", second: "d", gate: "fast" }), "the transaction on c and d");
    h.gate("slow").open();
    await slow;
    for (const id of ["a", "b", "c", "d"]) expect(await Slot.ref(id).get(ctx)).toEqual({ n: 1 });
  });

  test("two transactions taking the same instances in opposite orders both finish, each change applied once", async () => {
    const h = harness();
    const rt = await start(h.app());
    const ctx = rt.context();
    const one = Mover.ref("m1").pair(ctx, { first: "x", second: "y", gate: "one" });
    await within(h.arrival("one"), "the older transaction to hold x");
    const two = Mover.ref("m2").pair(ctx, { first: "y", second: "x", gate: "two" });
    await within(h.arrival("two"), "the younger transaction to hold y");
    // Each now asks for the instance the other holds: the younger lets go and runs again.
    h.gate("two").open();
    h.gate("one").open();
    await within(Promise.all([one, two]), "both transactions to finish");
    expect(await Slot.ref("x").get(ctx)).toEqual({ n: 2 });
    expect(await Slot.ref("y").get(ctx)).toEqual({ n: 2 });
    expect(h.runs.filter((r) => r === "two").length).toBe(2);
    expect(h.runs.filter((r) => r === "one").length).toBe(1);
  });
});

describe("slots", () => {
  test("workflows waiting for their children hold no slot: more parents than slots all finish", async () => {
    const rt = await start(workflows(() => {}), { concurrency: 4 });
    const ctx = rt.context();
    const parents = await Promise.all(Array.from({ length: 12 }, (_, i) => Flow.ref(`p${i}`).spawn().parent(ctx, {})));
    // An unrelated task gets a slot too.
    const { task: other } = await Shop.ref("s").spawn().charge(ctx, { amount: 1 });
    await within(Promise.all(parents.map((p) => p.task)), "12 parents and their children, on 4 slots");
    expect(await other).toEqual({ charges: 1 });
  });
});
