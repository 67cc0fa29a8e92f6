// Methods that misbehave in every way user code can: they throw values that are not
// Errors, return or leave values that JSON cannot store, or never settle.
import { Application, defineApi, z } from "mend";

const thrown = z.enum(["undefined", "null", "number", "object", "cycle"]);
const unstorable = z.enum(["function", "cycle", "bigint", "symbol"]);

export const { Hostile } = defineApi({
  Hostile: {
    state: { n: z.number().default(0), extra: z.unknown().optional() },
    methods: {
      /** Changes the state, then throws a value that is not an Error. */
      throws: { kind: "writer", request: { what: thrown }, response: z.void() },
      /** Changes the state, then returns a value that cannot be stored. */
      returns: { kind: "writer", request: { what: unstorable }, response: { value: z.unknown() } },
      /** Leaves a state that cannot be stored. */
      leaves: { kind: "writer", request: { what: unstorable }, response: z.void() },
      /** Changes the state, then never settles, whatever ctx.signal says. */
      hangs: { kind: "writer", request: {}, response: z.void() },
      /** A workflow that never settles, whatever ctx.signal says. */
      stalls: { kind: "workflow", request: {}, response: z.void() },
      /** A transaction that waits for `linger.gate`, then calls a writer of `other`, whatever ctx.signal says. */
      lingers: { kind: "transaction", request: { other: z.string() }, response: z.void() },
      bump: { kind: "writer", request: {}, response: { n: z.number() } },
      get: { kind: "reader", request: {}, response: { n: z.number() } },
    },
  },
});

function throwable(what: z.infer<typeof thrown>): unknown {
  switch (what) {
    case "undefined":
      return undefined;
    case "null":
      return null;
    case "number":
      return 42;
    case "object":
      return { code: "E_NOPE", detail: [1, 2] };
    case "cycle": {
      const o: Record<string, unknown> = { name: "loop" };
      o.self = o;
      return o;
    }
  }
}

function value(what: z.infer<typeof unstorable>): unknown {
  switch (what) {
    case "function":
      return { callback: () => 1 };
    case "cycle": {
      const o: Record<string, unknown> = {};
      o.self = o;
      return o;
    }
    case "bigint":
      return { big: 10n };
    case "symbol":
      return { tag: Symbol("x") };
  }
}

const never = () => new Promise<never>(() => {});

/** Holds `lingers` until a test opens the gate, and tells the test when its call has ended. */
export const linger = { gate: Promise.resolve(), ended: () => {} };

export const HostileServicer = Hostile.servicer({
  async throws(ctx, state, req) {
    state.n += 100;
    throw throwable(req.what);
  },
  async returns(ctx, state, req) {
    state.n += 100;
    return { value: value(req.what) };
  },
  async leaves(ctx, state, req) {
    state.n += 100;
    state.extra = value(req.what);
  },
  async hangs(ctx, state) {
    state.n += 100;
    await never();
  },
  async stalls() {
    await never();
  },
  async lingers(ctx, state, req) {
    await linger.gate;
    try {
      await Hostile.ref(req.other).bump(ctx);
    } finally {
      linger.ended();
    }
  },
  async bump(ctx, state) {
    state.n += 1;
    return { n: state.n };
  },
  async get(ctx, state) {
    return { n: state.n };
  },
});

/** Failed tasks wait an hour: each test sees exactly the first attempt. */
export const app = new Application({ servicers: [HostileServicer], retry: { initialMs: 3_600_000, maxMs: 3_600_000 } });
export default app;
