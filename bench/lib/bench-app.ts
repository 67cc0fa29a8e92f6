// The in-process app of the throughput and timer benchmarks.
import { Application, defineApi, z } from "mend";

export const { Counter, Driver } = defineApi({
  Counter: {
    state: { n: z.number().default(0) },
    methods: {
      increment: { kind: "writer", request: {}, response: z.void() },
      value: { kind: "reader", request: {}, response: { n: z.number() } },
    },
  },
  Driver: {
    state: { scheduled: z.number().default(0) },
    methods: {
      /** Schedules `count` increments of Counter(`counter`): they exist once this writer commits. */
      scheduleMany: { kind: "writer", request: { count: z.number().int().positive(), counter: z.string() }, response: z.void() },
    },
  },
});

export const app = new Application({
  servicers: [
    Counter.servicer({
      async increment(ctx, state) {
        state.n += 1;
      },
      async value(ctx, state) {
        return { n: state.n };
      },
    }),
    Driver.servicer({
      async scheduleMany(ctx, state, req) {
        for (let i = 0; i < req.count; i++) await Counter.ref(req.counter).schedule().increment(ctx);
        state.scheduled += req.count;
      },
    }),
  ],
});
