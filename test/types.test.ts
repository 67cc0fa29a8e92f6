// Type-level tests: `npm test` runs tsc, which fails if any @ts-expect-error below is not an error.
import { expect, expectTypeOf, test } from "vitest";
import { defineApi, z, type Context, type RequestOf, type ResponseOf, type RuntimeOptions, type StateOf, type Task, type TaskId } from "mend";
import { Account } from "../fixtures/bank/src/api.js";

declare const ctx: Context;

test("requests are typed", () => {
  const ref = Account.ref("alice");
  // @ts-expect-error amount must be a number
  void (() => ref.withdraw(ctx, { amount: "x" }));
  // @ts-expect-error amount is required
  void (() => ref.withdraw(ctx, {}));
  // @ts-expect-error no such method
  void (() => ref.close(ctx));
  // A method whose request is empty needs none.
  void (() => ref.balance(ctx));
  expectTypeOf(ref.withdraw).returns.resolves.toEqualTypeOf<{ balance: number }>();
  expectTypeOf(ref.schedule().withdraw).returns.resolves.toEqualTypeOf<TaskId>();
  expect(typeof ref.withdraw).toBe("function");
});

test("servicers must implement every method with the right types", () => {
  const { Thing } = defineApi({
    Thing: {
      state: { n: z.number().default(0) },
      methods: {
        get: { kind: "reader", request: {}, response: { n: z.number() } },
        set: { kind: "writer", request: { n: z.number() }, response: z.void() },
      },
    },
  });
  // @ts-expect-error `set` is missing
  expect(() => Thing.servicer({ async get(c, state) { return { n: state.n }; } })).toThrow("has no method 'set'");
  Thing.servicer({
    // @ts-expect-error the response must be { n: number }
    async get() { return { n: "one" }; },
    async set(c, state, req) { state.n = req.n; },
  });
  Thing.servicer({
    async get(c, state) { return { n: state.n }; },
    // @ts-expect-error the request has no field m
    async set(c, state, req) { state.n = req.m; },
  });
  expectTypeOf(Thing.SetAborted).toBeConstructibleWith(undefined as never);
});

test("declared errors are typed on their Aborted class", () => {
  const e = new Account.WithdrawAborted({ type: "Overdraft", shortBy: 3 });
  expectTypeOf(e.error).toEqualTypeOf<{ type: "Overdraft"; shortBy: number }>();
  // @ts-expect-error not a declared error
  void new Account.WithdrawAborted({ type: "Other" });
  expect(e.message).toBe("Overdraft");
  expect(e.name).toBe("WithdrawAborted");
});

test("state, spawned tasks and retrieved tasks keep their precise types", () => {
  type State = Parameters<Parameters<typeof Account.servicer>[0]["balance"]>[1];
  expectTypeOf<State["balance"]>().toEqualTypeOf<number>();
  expectTypeOf<State["currency"]>().toEqualTypeOf<string>();
  // @ts-expect-error not a field of the state
  expectTypeOf<State["owner"]>().toBeUnknown();
  expectTypeOf(Account.ref("a").spawn().statement).returns.resolves.toEqualTypeOf<{ task: Task<{ text: string }> }>();
  expectTypeOf(Account.StatementTask.retrieve).returns.toEqualTypeOf<Task<{ text: string }>>();
  expectTypeOf<RuntimeOptions["synchronous"]>().toEqualTypeOf<"FULL" | "NORMAL" | undefined>();
  expect(typeof Account.ref).toBe("function");
});

test("a declaration with an unknown key is a type error", () => {
  const load = () => {
    // @ts-expect-error `erors` is not a key of a method declaration
    defineApi({ T: { state: {}, methods: { m: { kind: "writer", request: {}, erors: [] } } } });
  };
  const state = () => {
    // @ts-expect-error `sttae` is not a key of a state type declaration
    defineApi({ T: { sttae: {}, state: {}, methods: {} } });
  };
  expect(load).toThrow("unknown key 'erors'");
  expect(state).toThrow("unknown key 'sttae'");
});

test("constructors, own refs, and the types of state, requests and responses", () => {
  const { Box } = defineApi({
    Box: {
      state: { label: z.string(), items: z.array(z.string()).default([]) },
      methods: {
        make: { kind: "writer", factory: {}, request: { label: z.string() }, response: { made: z.boolean() } },
        add: { kind: "writer", request: { item: z.string() }, response: z.void() },
      },
    },
  });
  expectTypeOf<StateOf<typeof Box>>().toEqualTypeOf<{ label: string; items: string[] }>();
  expectTypeOf<RequestOf<typeof Box, "add">>().toEqualTypeOf<{ item: string }>();
  expectTypeOf<ResponseOf<typeof Box, "make">>().toEqualTypeOf<{ made: boolean }>();
  expectTypeOf<z.infer<typeof Box.State>>().toEqualTypeOf<StateOf<typeof Box>>();
  type Made = Awaited<ReturnType<typeof Box.make>>;
  expectTypeOf<Made[1]>().toEqualTypeOf<{ made: boolean }>();
  expectTypeOf<Made[0]["stateId"]>().toEqualTypeOf<string>();
  void (() => Box.make(ctx, "b1", { label: "x" }));
  void (() => Box.make(ctx, { label: "x" }));
  void (() => Box.idempotently("k").make(ctx, { label: "x" }));
  // @ts-expect-error `add` is not a constructor
  void (() => Box.add(ctx, { item: "x" }));
  // @ts-expect-error the request of make needs a label
  void (() => Box.make(ctx, "b1", {}));
  const own = Box.ref();
  // @ts-expect-error an own ref has no id of its own
  void own.stateId;
  void (() => own.add(ctx, { item: "y" }));
  expect(typeof Box.make).toBe("function");
});
