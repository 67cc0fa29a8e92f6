// The app of the tests of several servers on one PostgreSQL store (test/pg-servers.test.ts).
// Its writers note, in this process's memory, which instances a writer is inside of: two
// runtimes in one process that let writers of one instance overlap are caught by the app.
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Application, defineApi, z } from "mend";

export const { Cell, Pair, Slow } = defineApi({
  Cell: {
    state: { n: z.number().default(0), tokens: z.array(z.string()).default([]) },
    methods: {
      /** Adds `by` and notes `token`, holding the instance `holdMs`. */
      add: { kind: "writer", request: { by: z.number().default(1), token: z.string().default(""), holdMs: z.number().default(0) }, response: { n: z.number() } },
      get: { kind: "reader", request: {}, response: { n: z.number(), tokens: z.array(z.string()) } },
    },
  },
  Pair: {
    state: { moves: z.number().default(0) },
    methods: {
      /** Moves `amount` from one cell to another, once the file `gate` exists (if given). */
      move: {
        kind: "transaction",
        request: { from: z.string(), to: z.string(), amount: z.number(), gate: z.string().default(""), log: z.string().default("") },
        response: { moves: z.number() },
      },
    },
  },
  Slow: {
    state: {},
    methods: {
      /** Waits until cancelled; tells `aborted` (this process) what its signal said. */
      wait: { kind: "workflow", request: {}, response: z.void() },
    },
  },
});

/** Instances a writer is inside of now, in this process. */
const inside = new Set<string>();
/** Writers that entered an instance another writer was inside of. */
export const overlaps: string[] = [];
/** How many writers ran, per instance (in this process). */
export const entered = new Map<string, number>();

/** Resolves with the reason a `Slow.wait` attempt's signal aborted with. */
export const aborted: { reason: Promise<unknown>; tell: (reason: unknown) => void } = (() => {
  let tell!: (reason: unknown) => void;
  const reason = new Promise<unknown>((resolve) => (tell = resolve));
  return { reason, tell };
})();

async function waitForFile(path: string, signal: AbortSignal): Promise<void> {
  while (!existsSync(path)) {
    if (signal.aborted) throw signal.reason;
    await sleep(10);
  }
}

export const CellServicer = Cell.servicer({
  async add(ctx, state, req) {
    const id = ctx.stateId;
    if (inside.has(id)) overlaps.push(id);
    inside.add(id);
    entered.set(id, (entered.get(id) ?? 0) + 1);
    try {
      state.n += req.by;
      if (req.token) state.tokens.push(req.token);
      if (req.holdMs > 0) await sleep(req.holdMs);
      return { n: state.n };
    } finally {
      inside.delete(id);
    }
  },
  async get(ctx, state) {
    return { n: state.n, tokens: state.tokens };
  },
});

export const PairServicer = Pair.servicer({
  async move(ctx, state, req) {
    await Cell.ref(req.from).add(ctx, { by: -req.amount, token: `move:${ctx.stateId}` });
    if (req.gate) await waitForFile(req.gate, ctx.signal);
    await Cell.ref(req.to).add(ctx, { by: req.amount, token: `move:${ctx.stateId}` });
    state.moves += 1;
    return { moves: state.moves };
  },
});

export const SlowServicer = Slow.servicer({
  async wait(ctx) {
    ctx.signal.addEventListener("abort", () => aborted.tell(ctx.signal.reason), { once: true });
    await new Promise(() => {});
  },
});

export function app(servicers = [CellServicer, PairServicer, SlowServicer]) {
  return new Application({ servicers, retry: { initialMs: 5, maxMs: 50 } });
}

export default app();
