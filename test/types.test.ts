// Type-level tests: `npm test` runs tsc, which fails if any @ts-expect-error below is not an error.
import { expect, expectTypeOf, test } from "vitest";
import { defineApi, z, type Context, type RuntimeOptions, type Task, type TaskId } from "mend";
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
