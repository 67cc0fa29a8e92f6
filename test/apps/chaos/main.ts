// The app of the crash suite (test/chaos.test.ts). Every state change leaves a token in
// its counter's state, and every helper-protected effect appends a line to a log file, so
// that after the run the suite can tell a lost change from a duplicated one.
import { appendFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Application, atLeastOnce, atMostOnce, AtMostOnceFailedBeforeCompleting, defineApi, z } from "mend";
import { FIXED, SAVES } from "./settings.js";

/** Failed attempts are retried within 20 ms. */
const FAST = { initialMs: 5, maxMs: 20 };

export const { Counter, Flow } = defineApi({
  Counter: {
    state: { count: z.number().default(0), tokens: z.array(z.string()).default([]) },
    methods: {
      /**
       * Adds `token`, then holds the instance for `holdMs` (a slow writer); throws while the
       * attempt is below `failUntil`; `abort` ends it with a declared error.
       */
      increment: {
        kind: "writer",
        request: { token: z.string(), holdMs: z.number().default(0), failUntil: z.number().default(0), abort: z.boolean().default(false) },
        response: { count: z.number() },
        errors: [z.object({ type: z.literal("Refused"), token: z.string() })],
        retry: FAST,
      },
      /** Fails until settings.ts says FIXED; retried only when new code loads. */
      fixable: {
        kind: "writer",
        request: { token: z.string() },
        response: { count: z.number() },
        retry: { initialMs: 600_000, maxMs: 600_000 },
      },
      get: { kind: "reader", request: {}, response: { count: z.number(), saves: z.number() } },
    },
  },
  Flow: {
    state: {},
    methods: {
      /**
       * Increments a counter (a memoised call), sends with atLeastOnce and charges with
       * atMostOnce (each appends a line to `log`), spawns a child increment and awaits it,
       * then fails while the attempt is below `failUntil`. Each helper's fn takes `holdMs` after its effect.
       */
      run: {
        kind: "workflow",
        request: { token: z.string(), counter: z.string(), log: z.string(), holdMs: z.number().default(0), failUntil: z.number().default(0) },
        response: { count: z.number(), once: z.enum(["done", "unknown"]), child: z.number() },
        retry: FAST,
      },
    },
  },
});

export const CounterServicer = Counter.servicer({
  async increment(ctx, state, req) {
    if ((ctx.attempt ?? 0) < req.failUntil) throw new Error(`${req.token} fails on attempt ${ctx.attempt}`);
    if (req.abort) throw new Counter.IncrementAborted({ type: "Refused", token: req.token });
    state.count += 1;
    state.tokens.push(req.token);
    if (req.holdMs > 0) await sleep(req.holdMs);
    return { count: state.count };
  },
  async fixable(ctx, state, req) {
    if (!FIXED) throw new Error(`${req.token}: not fixed yet`);
    state.count += 1;
    state.tokens.push(req.token);
    return { count: state.count };
  },
  async get(ctx, state) {
    return { count: state.count, saves: SAVES };
  },
});

export const FlowServicer = Flow.servicer({
  async run(ctx, req) {
    const { count } = await Counter.ref(req.counter).increment(ctx, { token: `wf:${req.token}` });
    await atLeastOnce("send", ctx, async () => {
      appendFileSync(req.log, `${req.token} atLeastOnce\n`);
      await sleep(req.holdMs);
      return true;
    });
    let once: "done" | "unknown" = "done";
    try {
      await atMostOnce("charge", ctx, async () => {
        appendFileSync(req.log, `${req.token} atMostOnce\n`);
        await sleep(req.holdMs);
        return true;
      });
    } catch (e) {
      if (!(e instanceof AtMostOnceFailedBeforeCompleting)) throw e;
      once = "unknown";
    }
    const { task } = await Counter.ref(req.counter).spawn().increment(ctx, { token: `child:${req.token}` });
    const child = await task;
    if ((ctx.attempt ?? 0) < req.failUntil) throw new Error(`${req.token} fails on attempt ${ctx.attempt}`);
    return { count, once, child: child.count };
  },
});

export default new Application({ servicers: [CounterServicer, FlowServicer] });
