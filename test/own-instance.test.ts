// A transaction that calls a writer or a transaction on an instance it is changing itself
// (its own, `Type.ref()`, or one a caller in the same transaction is changing): the call
// changes the state the caller holds, so the caller sees the change and keeps it; a call
// that does not complete leaves that state as it was. A reader called there reads that state as it is now.
import { describe, expect, test } from "vitest";
import { Application, defineApi, z } from "mend";
import { start } from "./helpers/runtimes.js";

const { Wallet } = defineApi({
  Wallet: {
    state: { balance: z.number().default(0), log: z.array(z.string()).default([]) },
    methods: {
      deposit: {
        kind: "writer",
        request: { by: z.number(), fail: z.enum(["", "declared", "bug"]).default("") },
        response: { balance: z.number() },
        errors: [z.object({ type: z.literal("Refused") })],
      },
      /** Notes `before`, deposits into `into` (itself when empty), notes `after`; catches what the deposit throws if `tolerant`. */
      pay: {
        kind: "transaction",
        request: { into: z.string().default(""), by: z.number(), fail: z.enum(["", "declared", "bug"]).default(""), tolerant: z.boolean().default(false) },
        response: { seen: z.number(), read: z.number() },
      },
      /** Deposits into `back` (an instance changing it up the call), then refuses if `refuse`. */
      relay: {
        kind: "transaction",
        request: { back: z.string(), by: z.number(), refuse: z.boolean() },
        response: z.void(),
        errors: [z.object({ type: z.literal("Refused") })],
      },
      /** Notes `before`, has `via` relay a deposit back into this instance, notes `after`. */
      roundTrip: {
        kind: "transaction",
        request: { via: z.string(), by: z.number(), refuse: z.boolean() },
        response: { seen: z.number(), relayed: z.array(z.string()) },
      },
      /** Has `into` pay itself: a nested transaction calling a writer on its own instance. */
      outer: { kind: "transaction", request: { into: z.string(), by: z.number() }, response: { seen: z.number(), read: z.number() } },
      get: { kind: "reader", request: {}, response: { balance: z.number(), log: z.array(z.string()) } },
    },
  },
});

const app = new Application({
  servicers: [
    Wallet.servicer({
      async deposit(ctx, state, req) {
        state.balance += req.by;
        state.log.push(`deposit ${req.by}`);
        if (req.fail === "declared") throw new Wallet.DepositAborted({ type: "Refused" });
        if (req.fail === "bug") throw new Error("a bug in deposit");
        return { balance: state.balance };
      },
      async pay(ctx, state, req) {
        state.log.push("before");
        const into = req.into === "" ? Wallet.ref() : Wallet.ref(req.into);
        try {
          await into.deposit(ctx, { by: req.by, fail: req.fail });
        } catch (e) {
          if (!req.tolerant) throw e;
          state.log.push("caught");
        }
        state.log.push("after");
        // A reader on the instance reads it as the transaction has it now.
        const { balance: read } = await Wallet.ref().get(ctx);
        return { seen: state.balance, read };
      },
      async relay(ctx, state, req) {
        await Wallet.ref(req.back).deposit(ctx, { by: req.by });
        state.log.push("relayed");
        if (req.refuse) throw new Wallet.RelayAborted({ type: "Refused" });
      },
      async roundTrip(ctx, state, req) {
        state.log.push("before");
        try {
          await Wallet.ref(req.via).relay(ctx, { back: ctx.stateId, by: req.by, refuse: req.refuse });
        } catch (e) {
          if (!(e instanceof Wallet.RoundTripAborted) && !(e instanceof Wallet.RelayAborted)) throw e;
          state.log.push("refused");
        }
        state.log.push("after");
        // What the relay did is kept, or undone with it.
        const { log: relayed } = await Wallet.ref(req.via).get(ctx);
        return { seen: state.balance, relayed };
      },
      async outer(ctx, state, req) {
        return await Wallet.ref(req.into).pay(ctx, { by: req.by });
      },
      async get(ctx, state) {
        return { balance: state.balance, log: state.log };
      },
    }),
  ],
});

describe("a transaction calling a writer on its own instance", () => {
  test("the writer changes the state the transaction holds: the transaction sees it, and both changes are kept", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    expect(await Wallet.ref("w").pay(ctx, { by: 5 })).toEqual({ seen: 5, read: 5 });
    expect(await Wallet.ref("w").get(ctx)).toEqual({ balance: 5, log: ["before", "deposit 5", "after"] });
    // As a task too.
    const { task } = await Wallet.ref("w").spawn().pay(ctx, { by: 2 });
    expect(await task).toEqual({ seen: 7, read: 7 });
    expect(await Wallet.ref("w").get(ctx)).toEqual({ balance: 7, log: ["before", "deposit 5", "after", "before", "deposit 2", "after"] });
  });

  test("a writer that ends with a declared error, or throws, changes nothing; the transaction's own changes stay", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    for (const fail of ["declared", "bug"] as const) {
      expect(await Wallet.ref(fail).pay(ctx, { by: 5, fail, tolerant: true })).toEqual({ seen: 0, read: 0 });
      expect(await Wallet.ref(fail).get(ctx)).toEqual({ balance: 0, log: ["before", "caught", "after"] });
    }
  });

  test("a writer on another instance is unchanged by this: its change is kept, the caller's state is its own", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    expect(await Wallet.ref("a").pay(ctx, { into: "b", by: 3 })).toEqual({ seen: 0, read: 0 });
    expect(await Wallet.ref("a").get(ctx)).toEqual({ balance: 0, log: ["before", "after"] });
    expect(await Wallet.ref("b").get(ctx)).toEqual({ balance: 3, log: ["deposit 3"] });
  });
});

describe("a nested transaction calling a writer on its own instance", () => {
  test("is the same: the nested transaction sees the change and keeps it", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    expect(await Wallet.ref("o").outer(ctx, { into: "p", by: 6 })).toEqual({ seen: 6, read: 6 });
    expect(await Wallet.ref("p").get(ctx)).toEqual({ balance: 6, log: ["before", "deposit 6", "after"] });
    expect(await Wallet.ref("o").get(ctx)).toEqual({ balance: 0, log: [] });
  });
});

describe("a nested transaction calling back into an instance its caller is changing", () => {
  test("the deposit lands in the caller's state, which the caller sees and keeps", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    expect(await Wallet.ref("home").roundTrip(ctx, { via: "relay", by: 4, refuse: false })).toEqual({ seen: 4, relayed: ["relayed"] });
    expect(await Wallet.ref("home").get(ctx)).toEqual({ balance: 4, log: ["before", "deposit 4", "after"] });
    expect(await Wallet.ref("relay").get(ctx)).toEqual({ balance: 0, log: ["relayed"] });
  });

  test("a nested transaction that ends with a declared error undoes what it did to the caller's state too", async () => {
    const rt = await start(app);
    const ctx = rt.context();
    expect(await Wallet.ref("home").roundTrip(ctx, { via: "relay", by: 4, refuse: true })).toEqual({ seen: 0, relayed: [] });
    expect(await Wallet.ref("home").get(ctx)).toEqual({ balance: 0, log: ["before", "refused", "after"] });
    expect(await Wallet.ref("relay").get(ctx)).toEqual({ balance: 0, log: [] });
  });
});
