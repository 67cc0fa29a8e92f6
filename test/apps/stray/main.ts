// Code that lets errors escape where nobody awaits them: a rejected promise never handled,
// a throw from a timer. Each fails only the call or task that raised it, until FIXED.
import { Application, defineApi, z } from "mend";
import { FIXED } from "./settings.js";

export const { Stray } = defineApi({
  Stray: {
    state: { n: z.number().default(0) },
    methods: {
      rejects: { kind: "workflow", request: {}, response: { ok: z.boolean() }, retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: false } },
      throwsLater: { kind: "writer", request: {}, response: { n: z.number() }, retry: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: false } },
      bump: { kind: "writer", request: {}, response: { n: z.number() } },
      outside: { kind: "reader", request: {}, response: z.void() },
    },
  },
});

const forever = () => new Promise<never>(() => {});

export default new Application({
  servicers: [
    Stray.servicer({
      async rejects() {
        if (!FIXED) {
          void Promise.reject(new Error("a stray rejection"));
          await forever();
        }
        return { ok: true };
      },
      async throwsLater(ctx, state) {
        if (!FIXED) {
          setTimeout(() => {
            throw new Error("thrown from a timer");
          }, 1);
          await forever();
        }
        state.n += 1;
        return { n: state.n };
      },
      async bump(ctx, state) {
        state.n += 1;
        return { n: state.n };
      },
      async outside() {
        // A microtask queued this way runs outside the call's async context (Node 20): the error belongs to nobody.
        queueMicrotask(() => {
          throw new Error("nobody's error");
        });
      },
    }),
  ],
});
