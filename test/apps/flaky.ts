// A small app whose behaviour each test sets: a task that fails until fixed, a writer
// that blocks on a gate file, a method that throws non-Error values.
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Application, defineApi, z } from "mend";

export const { Job, Counter } = defineApi({
  Job: {
    state: { runs: z.number().default(0), log: z.array(z.string()).default([]) },
    methods: {
      work: { kind: "writer", request: { label: z.string().default("") }, response: { runs: z.number() } },
      wait: { kind: "workflow", request: {}, response: z.void() },
      fails: {
        kind: "writer",
        request: {},
        response: z.void(),
        errors: [z.object({ type: z.literal("Refused"), reason: z.string(), code: z.number() })],
      },
      get: { kind: "reader", request: {}, response: { runs: z.number(), log: z.array(z.string()) } },
    },
  },
  Counter: {
    state: { count: z.number().default(0) },
    methods: {
      increment: { kind: "writer", request: { gate: z.string().default("") }, response: { count: z.number() } },
      get: { kind: "reader", request: {}, response: { count: z.number() } },
    },
  },
});

/** What `Job.work` does on each attempt, given the attempt number (0 when not a task). */
type Work = (attempt: number, label: string) => void | Promise<void>;

export function jobServicer(work: Work = () => {}) {
  return Job.servicer({
    async work(ctx, state, req) {
      state.runs += 1;
      state.log.push(req.label);
      await work(ctx.attempt ?? 0, req.label);
      return { runs: state.runs };
    },
    async wait(ctx) {
      await new Promise((resolve, reject) => {
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
      });
    },
    async fails() {
      throw new Job.FailsAborted({ type: "Refused", reason: "no", code: 7 });
    },
    async get(ctx, state) {
      return { runs: state.runs, log: state.log };
    },
  });
}

export const CounterServicer = Counter.servicer({
  async increment(ctx, state, req) {
    state.count += 1;
    // Holds the attempt open while the gate file exists, so a test can kill the process here.
    while (req.gate && existsSync(req.gate)) await sleep(5);
    return { count: state.count };
  },
  async get(ctx, state) {
    return { count: state.count };
  },
});

export function app(work?: Work) {
  return new Application({ servicers: [jobServicer(work), CounterServicer] });
}

export default app();
