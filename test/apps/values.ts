// An app whose methods return, keep and fail with what a test asks for: large values,
// values JSON cannot hold, error messages with terminal escapes, a first attempt that fails.
import { Application, defineApi, z } from "mend";

export const { Blob } = defineApi({
  Blob: {
    state: { data: z.string().default("") },
    methods: {
      /** Returns a string of `bytes` characters. */
      make: { kind: "writer", request: { bytes: z.number().int().nonnegative() }, response: { data: z.string() } },
      /** Returns what it was given, whatever it is. */
      echo: { kind: "writer", request: { value: z.any() }, response: { value: z.any() } },
      /** Keeps a string of `bytes` characters in its state. */
      grow: { kind: "writer", request: { bytes: z.number().int().nonnegative() }, response: z.void() },
      /** Fails every attempt with this message. */
      failWith: { kind: "writer", request: { message: z.string() }, response: z.void(), retry: { initialMs: 60_000, maxMs: 60_000, jitter: false } },
      /** Fails its first attempt, then completes. */
      flaky: { kind: "writer", request: {}, response: z.void(), retry: { initialMs: 10, maxMs: 10, jitter: false } },
      get: { kind: "reader", request: {}, response: { bytes: z.number() } },
    },
  },
});

export const BlobServicer = Blob.servicer({
  async make(ctx, state, req) {
    return { data: "x".repeat(req.bytes) };
  },
  async echo(ctx, state, req) {
    return { value: req.value };
  },
  async grow(ctx, state, req) {
    state.data = "y".repeat(req.bytes);
  },
  async failWith(ctx, state, req) {
    throw new Error(req.message);
  },
  async flaky(ctx) {
    if (ctx.attempt === 1) throw new Error("the first attempt fails");
  },
  async get(ctx, state) {
    return { bytes: state.data.length };
  },
});

export default new Application({ servicers: [BlobServicer] });
