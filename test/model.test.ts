// A model-based test of the engine: random sequences of spawns (now or later), cancels,
// retries, loads of a new version, time passing, and stop-and-reopen, checked after each
// step against a small model of what each task's status must be. fast-check shrinks a
// failure to the shortest sequence that shows it.
import fc from "fast-check";
import { afterEach, expect, test, vi } from "vitest";
import { Application, defineApi, Runtime, z, type RuntimeOptions } from "mend";
import { newStore, onPostgres } from "./helpers/stores.js";

const { Model } = defineApi({
  Model: {
    state: { done: z.array(z.number()).default([]) },
    methods: {
      /** Completes, fails (until a fixed version is loaded) or aborts, as `kind` says. */
      run: {
        kind: "writer",
        request: { n: z.number(), kind: z.enum(["ok", "buggy", "abort"]) },
        response: z.void(),
        errors: [z.object({ type: z.literal("No") })],
      },
      get: { kind: "reader", request: {}, response: { done: z.array(z.number()) } },
    },
  },
});

/** A version of the app: in an unfixed one, "buggy" tasks fail (and retry an hour later). */
function version(fixed: boolean) {
  return new Application({
    retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: false },
    servicers: [
      Model.servicer({
        async run(ctx, state, req) {
          if (req.kind === "abort") throw new Model.RunAborted({ type: "No" });
          if (req.kind === "buggy" && !fixed) throw new Error("bug");
          state.done.push(req.n);
        },
        async get(ctx, state) {
          return { done: state.done };
        },
      }),
    ],
  });
}

type Kind = "ok" | "buggy" | "abort";
type Status = "waiting" | "COMPLETED" | "ABORTED" | "CANCELLED";

interface ModelTask {
  kind: Kind;
  /** When it may run next; Infinity while it waits out its (hour-long) backoff. */
  due: number;
  status: Status;
  /** No attempt may start before this: its `when`, or when it was retried. */
  firstDue: number;
}

interface World {
  tasks: ModelTask[];
  fixed: boolean;
  now: number;
}

interface Real {
  rt: Runtime;
  uuids: string[];
  options: RuntimeOptions;
}

/** Runs, in the model, what is due now: what the engine must have done once it is idle. */
function runDue(m: World): void {
  for (const t of m.tasks) {
    if (t.status !== "waiting" || t.due > m.now) continue;
    if (t.kind === "abort") t.status = "ABORTED";
    else if (t.kind === "ok" || m.fixed) t.status = "COMPLETED";
    else t.due = Infinity;
  }
}

/** Real I/O turns (group commits) until nothing is running and nothing due is left to run. */
async function settle(r: Real): Promise<void> {
  for (let turn = 0; turn < 2000; turn++) {
    await new Promise((resolve) => setImmediate(resolve));
    const tasks = await r.rt.listTasks({ limit: 1000 });
    const unfinished = tasks.filter((t) => !["COMPLETED", "ABORTED", "CANCELLED"].includes(t.status));
    const busy = unfinished.some((t) => t.status === "STARTED" || (t.dueAt !== null && t.dueAt <= Date.now()));
    if (!busy) return;
  }
  throw new Error(`the engine did not settle: ${JSON.stringify((await r.rt.listTasks({ limit: 1000 })).map((t) => [t.status, t.dueAt]))}`);
}

async function check(m: World, r: Real): Promise<void> {
  await settle(r);
  runDue(m);
  for (const [i, t] of m.tasks.entries()) {
    const { task, attempts } = await r.rt.getTask(r.uuids[i]!);
    const shown = ["COMPLETED", "ABORTED", "CANCELLED"].includes(task.status) ? task.status : "waiting";
    expect(shown, `task #${i} (${t.kind})`).toBe(t.status);
    for (const a of attempts) expect(a.startedAt, `an attempt of task #${i} started before its due time`).toBeGreaterThanOrEqual(t.firstDue);
    if (t.status === "COMPLETED") expect(attempts.filter((a) => a.outcome === "COMPLETED")).toHaveLength(1);
  }
  // Every completed task's change applied exactly once; nothing else applied.
  const completed = m.tasks.flatMap((t, i) => (t.status === "COMPLETED" ? [i] : []));
  const { done } = await Model.ref("m").get(r.rt.context());
  expect([...done].sort((a, b) => a - b)).toEqual(completed);
}

type Command = fc.AsyncCommand<World, Real>;

const spawn = (kind: Kind, delayMs: number): Command => ({
  check: () => true,
  async run(m, r) {
    const n = m.tasks.length;
    const { task } = await Model.ref("m").spawn({ when: { ms: delayMs } }).run(r.rt.context(), { n, kind });
    r.uuids.push(task.taskId.taskUuid);
    m.tasks.push({ kind, due: m.now + delayMs, status: "waiting", firstDue: m.now + delayMs });
    await check(m, r);
  },
  toString: () => `spawn(${kind}, ${delayMs} ms)`,
});

const cancel = (pick: number): Command => ({
  check: (m) => m.tasks.length > 0,
  async run(m, r) {
    const i = pick % m.tasks.length;
    const t = m.tasks[i]!;
    expect(await r.rt.cancel(r.uuids[i]!)).toBe(t.status === "waiting");
    if (t.status === "waiting") t.status = "CANCELLED";
    await check(m, r);
  },
  toString: () => `cancel(#${pick})`,
});

const retry = (pick: number): Command => ({
  check: (m) => m.tasks.length > 0,
  async run(m, r) {
    const i = pick % m.tasks.length;
    const t = m.tasks[i]!;
    expect(await r.rt.retry(r.uuids[i]!)).toBe(t.status === "waiting");
    // Retry means "now", also for a task not yet due.
    if (t.status === "waiting") (t.due = m.now), (t.firstDue = Math.min(t.firstDue, m.now));
    await check(m, r);
  },
  toString: () => `retry(#${pick})`,
});

const load = (fixed: boolean): Command => ({
  check: () => true,
  async run(m, r) {
    await r.rt.load(version(fixed));
    m.fixed = fixed;
    for (const t of m.tasks) if (t.status === "waiting" && t.due === Infinity) t.due = m.now;
    await check(m, r);
  },
  toString: () => `load(${fixed ? "fixed" : "buggy"})`,
});

const advance = (ms: number): Command => ({
  check: () => true,
  async run(m, r) {
    await vi.advanceTimersByTimeAsync(ms);
    m.now += ms;
    await check(m, r);
  },
  toString: () => `advance(${ms} ms)`,
});

const reopen: Command = {
  check: () => true,
  async run(m, r) {
    await r.rt.stop({ graceMs: 0 });
    r.rt = await Runtime.start(version(m.fixed), r.options);
    await check(m, r);
  },
  toString: () => "stop and reopen",
};

const commands = [
  fc.tuple(fc.constantFrom<Kind>("ok", "buggy", "abort"), fc.constantFrom(0, 0, 500, 2000)).map(([k, d]) => spawn(k, d)),
  fc.nat(50).map(cancel),
  fc.nat(50).map(retry),
  fc.boolean().map(load),
  fc.constantFrom(100, 600, 2500).map(advance),
  fc.constant(reopen),
];

afterEach(() => {
  vi.useRealTimers();
});

// Also with a window of a second and three tasks: most tasks then move between the store and memory.
// A store several servers share keeps no window: there, once.
test.each(
  (onPostgres ? [["no window", undefined]] : [
    ["the default window", undefined],
    ["a tiny window", { ms: 1000, tasks: 3 }],
  ]) as [string, { ms: number; tasks: number } | undefined][],
)("task statuses follow the model through any sequence of spawn, cancel, retry, load, time and reopen (%s)", async (_name, window) => {
  await fc.assert(
    fc.asyncProperty(fc.commands(commands, { maxCommands: 25 }), async (sequence) => {
      vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 1_700_000_000_000 });
      const store = await newStore();
      const options = window ? { ...store, window } : store;
      const real: Real = { rt: await Runtime.start(version(false), options), uuids: [], options };
      try {
        await fc.asyncModelRun(() => ({ model: { tasks: [], fixed: false, now: Date.now() }, real }), sequence);
      } finally {
        await real.rt.stop({ graceMs: 0 });
        vi.useRealTimers();
      }
    }),
    { numRuns: Number(process.env.MEND_MODEL_RUNS ?? 200) },
  );
}, 120_000);
