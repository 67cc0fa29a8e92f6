import { describe, expect, test } from "vitest";
import { Application, MendError, NotAllowed, Runtime, TaskId } from "mend";
import { Account, Bank } from "../fixtures/bank/src/api.js";
import bank from "../fixtures/bank/src/main.js";
import { Counter, CounterServicer, Job, app } from "./apps/flaky.js";
import { newStore, onPostgres } from "./helpers/stores.js";
import { next, start } from "./helpers/runtimes.js";
import { tempDir } from "./helpers/temp.js";

describe("writers and readers", () => {
  test("a writer's change is seen by readers once it returns", async () => {
    const rt = await start(bank);
    const ctx = rt.context();
    expect(await Account.ref("alice").deposit(ctx, { amount: 10 })).toEqual({ balance: 10 });
    expect(await Account.ref("alice").balance(ctx)).toEqual({ balance: 10 });
    expect(await Account.ref("bob").balance(ctx)).toEqual({ balance: 0 });
  });

  test("a writer that throws leaves no state change and no task", async () => {
    const rt = await start(
      new Application({
        servicers: [
          Account.servicer({
            async balance(ctx, state) { return { balance: state.balance }; },
            async open(ctx, state, req) {
              state.email = req.email;
              state.balance = 100;
              await Account.ref(ctx.stateId).schedule().welcomeEmail(ctx);
              throw new Error("boom after scheduling");
            },
            async deposit() { return { balance: 0 }; },
            async withdraw() { return { balance: 0 }; },
            async welcomeEmail() { return { sent: true }; },
            async recordEmail() {},
            async preview() { return { text: "" }; },
            async statement() { return { text: "" }; },
          }),
        ],
      }),
    );
    const ctx = rt.context();
    await expect(Account.ref("alice").open(ctx, { email: "a@example.com" })).rejects.toThrow("boom after scheduling");
    expect(await Account.ref("alice").balance(ctx)).toEqual({ balance: 0 });
    expect(await rt.listTasks({ limit: 10 })).toEqual([]);
  });

  test("writers of one instance run one at a time", async () => {
    const rt = await start(bank);
    const ctx = rt.context();
    await Promise.all(Array.from({ length: 50 }, () => Account.ref("alice").deposit(ctx, { amount: 1 })));
    expect(await Account.ref("alice").balance(ctx)).toEqual({ balance: 50 });
  });

  test("a declared error aborts the call with its class and fields, and changes nothing", async () => {
    const rt = await start(bank);
    const ctx = rt.context();
    await Account.ref("alice").deposit(ctx, { amount: 5 });
    const error = await Account.ref("alice").withdraw(ctx, { amount: 8 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Account.WithdrawAborted);
    expect((error as InstanceType<typeof Account.WithdrawAborted>).error).toEqual({ type: "Overdraft", shortBy: 3 });
    expect(await Account.ref("alice").balance(ctx)).toEqual({ balance: 5 });
  });

  test("a request that fails its schema is refused with the schema's message", async () => {
    const rt = await start(bank);
    const target = { stateType: "Account", stateId: "alice", method: "deposit" };
    await expect(rt.call(target, { amount: "x" })).rejects.toThrow(/Invalid request for Account.deposit:[\s\S]*amount/);
    await expect(rt.call(target, { amount: -1 })).rejects.toThrow(/amount/);
    await expect(rt.call({ ...target, method: "nope" }, {})).rejects.toThrow("Unknown method Account.nope.");
    await expect(rt.call({ ...target, stateType: "Nope" }, {})).rejects.toThrow("Unknown state type Nope.");
  });
});

describe("transactions", () => {
  test("writes across instances commit together", async () => {
    const rt = await start(bank);
    const ctx = rt.context();
    await Account.ref("alice").deposit(ctx, { amount: 10 });
    await Bank.ref("b").transfer(ctx, { from: "alice", to: "bob", amount: 4 });
    expect(await Account.ref("alice").balance(ctx)).toEqual({ balance: 6 });
    expect(await Account.ref("bob").balance(ctx)).toEqual({ balance: 4 });
  });

  test("a transaction that fails after a write rolls every write back", async () => {
    const rt = await start(bank);
    const ctx = rt.context();
    await Account.ref("alice").deposit(ctx, { amount: 10 });
    // The deposit to bob happens after the withdrawal from carol fails: nothing may stay.
    const failing = new Application({
      servicers: [
        bank.servicers[0]!,
        Bank.servicer({
          async transfer(ctx, state, req) {
            await Account.ref(req.to).deposit(ctx, { amount: req.amount });
            await Account.ref(req.from).withdraw(ctx, { amount: req.amount });
            state.transfers += 1;
          },
        }),
      ],
    });
    await rt.load(failing);
    await expect(Bank.ref("b").transfer(ctx, { from: "carol", to: "bob", amount: 4 })).rejects.toThrow();
    expect(await Account.ref("bob").balance(ctx)).toEqual({ balance: 0 });
    expect(await Account.ref("alice").balance(ctx)).toEqual({ balance: 10 });
  });

  test("a declared error of the transaction aborts it with its own class", async () => {
    const rt = await start(bank);
    const ctx = rt.context();
    const error = await Bank.ref("b").transfer(ctx, { from: "alice", to: "bob", amount: 4 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Bank.TransferAborted);
    expect((error as InstanceType<typeof Bank.TransferAborted>).error).toEqual({ type: "Overdraft", shortBy: 4 });
  });
});

describe("method kinds", () => {
  test("a reader may not call a writer", async () => {
    const rt = await start(
      new Application({
        servicers: [
          Counter.servicer({
            ...(CounterServicer.impl as unknown as Parameters<typeof Counter.servicer>[0]),
            async get(ctx) {
              await Counter.ref("other").increment(ctx);
              return { count: 0 };
            },
          }),
        ],
      }),
    );
    await expect(Counter.ref("c").get(rt.context())).rejects.toBeInstanceOf(NotAllowed);
  });

  test("calling a workflow directly spawns it and waits for it", async () => {
    const rt = await start(bank);
    expect(await Account.ref("alice").welcomeEmail(rt.context())).toEqual({ sent: true });
    expect(await Account.ref("alice").balance(rt.context())).toEqual({ balance: 0 });
  });

  test("a writer's scheduled task exists only once the writer commits, and then runs", async () => {
    const rt = await start(bank);
    const ctx = rt.context();
    const finished = next<{ taskId: TaskId }>(rt, "task:finished");
    await Account.ref("alice").open(ctx, { email: "a@example.com" });
    const [task] = await rt.listTasks({ limit: 10 });
    expect(task).toMatchObject({ method: "welcomeEmail", status: "SCHEDULED" });
    // `when` counts from the moment the writer asked for the task.
    expect(task!.dueAt! - task!.createdAt).toBe(5000);
    expect((await rt.getTask(task!.taskId.taskUuid)).attempts).toEqual([]);
    await rt.retry(task!.taskId.taskUuid);
    expect((await finished).taskId).toEqual(task!.taskId);
  });
});

describe("the store", () => {
  test("state and tasks survive closing and reopening", async () => {
    const store = await newStore();
    const first = await Runtime.start(bank, store);
    await Account.ref("alice").deposit(first.context(), { amount: 7 });
    const { task } = await Account.ref("alice").spawn({ when: { hours: 1 } }).welcomeEmail(first.context());
    await first.stop();
    const second = await start(bank, store);
    expect(await Account.ref("alice").balance(second.context())).toEqual({ balance: 7 });
    expect((await second.getTask(task.taskId.taskUuid)).task.status).toBe("SCHEDULED");
  });

  // On PostgreSQL several runtimes share a store: see test/pg-servers.test.ts.
  test.skipIf(onPostgres)("a second runtime on the same store refuses", async () => {
    const directory = tempDir();
    await start(bank, { directory });
    await expect(Runtime.start(bank, { directory })).rejects.toThrow(/is in use by process \d+/);
  });

  test("a response that does not match its schema is a clear error on the call", async () => {
    const rt = await start(app());
    const ctx = rt.context();
    const bad = new Application({
      servicers: [
        Job.servicer({
          ...(app().servicers[0]!.impl as unknown as Parameters<typeof Job.servicer>[0]),
          async get() { return { runs: 1n, log: [] } as never; },
        }),
        CounterServicer,
      ],
    });
    await rt.load(bad);
    const error = await Job.ref("j").get(ctx).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MendError);
    expect((error as MendError).message).toMatch(/Job.get returned a response that does not match its schema/);
  });
});
