import { defineApi, z } from "mend";

const Refused = z.object({ type: z.literal("Refused"), by: z.string() });

export const { Ledger, Cell, Tx, Guarded, Relay, Flow } = defineApi({
  /** A type with a constructor, and a state field without a default. */
  Ledger: {
    state: { owner: z.string(), entries: z.array(z.number()).default([]) },
    methods: {
      open: { kind: "writer", factory: {}, request: { owner: z.string() }, response: { opened: z.string() } },
      add: { kind: "writer", request: { n: z.number() }, response: { total: z.number() } },
      total: { kind: "reader", request: {}, response: { owner: z.string(), total: z.number() } },
    },
  },
  /** A type without constructors: an instance exists from its first write. */
  Cell: {
    state: { n: z.number().default(0) },
    methods: {
      add: { kind: "writer", request: { by: z.number().default(1) }, response: { n: z.number() } },
      get: { kind: "reader", request: {}, response: { n: z.number() } },
    },
  },
  Tx: {
    state: { runs: z.number().default(0) },
    methods: {
      /** Calls `inner` on the cells, then throws if `fail`. */
      fanout: { kind: "transaction", request: { cells: z.array(z.string()), fail: z.boolean().default(false) }, response: z.void() },
      /** Adds 1 to each cell; then refuses with a declared error if `refuse`. */
      inner: { kind: "transaction", request: { cells: z.array(z.string()), refuse: z.boolean().default(false) }, response: z.void(), errors: [Refused] },
      /** Calls a refusing `inner`, catches its error, then adds to `kept`. */
      tolerant: { kind: "transaction", request: { cells: z.array(z.string()), kept: z.string() }, response: z.void() },
      /** Lets the declared error of a refusing `inner` escape, and declares it too. */
      pass: { kind: "transaction", request: { cells: z.array(z.string()) }, response: z.void(), errors: [Refused] },
      /** Lets it escape without declaring it. */
      nopass: { kind: "transaction", request: { cells: z.array(z.string()) }, response: z.void(), retry: { initialMs: 3_600_000, maxMs: 3_600_000 } },
    },
  },
  Guarded: {
    state: { n: z.number().default(0) },
    methods: {
      get: { kind: "reader", request: {}, response: { n: z.number(), userId: z.string().nullable() } },
      set: { kind: "writer", request: { n: z.number() }, response: z.void() },
      later: { kind: "workflow", request: {}, response: { done: z.boolean() } },
    },
  },
  /** No authorizer: calls the guarded type from inside the application. */
  Relay: {
    state: {},
    methods: { relay: { kind: "transaction", request: { id: z.string(), n: z.number() }, response: z.void() } },
  },
  Flow: {
    state: {},
    methods: {
      readWrite: { kind: "workflow", request: { cell: z.string() }, response: { before: z.number(), after: z.number() } },
      modes: { kind: "workflow", request: {}, response: z.void() },
      waitFor: { kind: "workflow", request: { cell: z.string(), atLeast: z.number() }, response: { n: z.number() } },
      badUntil: { kind: "workflow", request: {}, response: z.void() },
      makeLedger: { kind: "workflow", request: {}, response: { id: z.string(), again: z.string() } },
    },
  },
});
