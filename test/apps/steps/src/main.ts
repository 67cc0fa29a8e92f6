// A workflow app for rerunning from a step: each step bumps a counter in the state of its
// Pipeline instance, so that the app itself counts how often each step ran. `run` charges
// once (atMostOnce), records three steps, then fails (a minute between attempts) until it is
// fixed; `poll` is a loop whose last iteration fails the same way.
import { Application, atLeastOnce, atMostOnce, defineApi, z } from "mend";

const slowRetry = { initialMs: 60_000, maxMs: 60_000, jitter: false };

export const { Pipeline } = defineApi({
  Pipeline: {
    state: { runs: z.record(z.string(), z.number()).default({}) },
    methods: {
      bump: { kind: "writer", request: { step: z.string() }, response: { runs: z.number() } },
      runs: { kind: "reader", request: {}, response: { runs: z.record(z.string(), z.number()) } },
      run: { kind: "workflow", request: {}, response: { done: z.boolean() }, retry: slowRetry },
      poll: { kind: "workflow", request: { iterations: z.number() }, response: { done: z.boolean() }, retry: slowRetry },
    },
  },
});

/** While `until` is set, `run` waits on it after its steps (saying so with `reached`): a test holds an attempt running. */
export const hold: { until?: Promise<void>; reached?: () => void } = {};

const FIXED = false;

export const PipelineServicer = Pipeline.servicer({
  async bump(ctx, state, req) {
    state.runs[req.step] = (state.runs[req.step] ?? 0) + 1;
    return { runs: state.runs[req.step]! };
  },
  async runs(ctx, state) {
    return { runs: state.runs };
  },
  async run(ctx) {
    const self = Pipeline.ref(ctx.stateId);
    await atMostOnce("charge", ctx, async () => (await self.bump(ctx, { step: "charge" })).runs);
    await self.idempotently("first").bump(ctx, { step: "first" });
    await self.idempotently("second").bump(ctx, { step: "second" });
    await atLeastOnce("third", ctx, async () => (await self.bump(ctx, { step: "third" })).runs);
    if (hold.until) {
      hold.reached?.();
      await hold.until;
    }
    if (!FIXED) throw new Error("The pipeline is not fixed yet");
    return { done: true };
  },
  async poll(ctx, req) {
    const self = Pipeline.ref(ctx.stateId);
    for await (const i of ctx.loop("poll", {})) {
      await self.idempotently("tick").bump(ctx, { step: `tick${i}` });
      if (i + 1 >= req.iterations) throw new Error(`Iteration ${i} fails until the app is fixed`);
    }
    return { done: true };
  },
});

export default new Application({ servicers: [PipelineServicer] });
