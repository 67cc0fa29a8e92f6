// What is committed together stays together when the store fails at a chosen point of the
// commit path (src/store/faults.ts), and what a reader sees is only ever what is durable.
import { afterEach, describe, expect, test } from "vitest";
import { Application, Runtime } from "mend";
import { Account } from "../fixtures/bank/src/api.js";
import bank from "../fixtures/bank/src/main.js";
import { armFault, disarmFaults, parseFaults } from "../src/store/faults.js";
import { Counter, CounterServicer, jobServicer } from "./apps/flaky.js";
import { Flow, Shop, app as workflows } from "./apps/workflows.js";
import { next, start } from "./helpers/runtimes.js";

afterEach(() => disarmFaults());

/** Retries at once, so a test waits for the retry's events, not for a backoff. */
const fast = { initialMs: 1, maxMs: 1, jitter: false };

function counterApp() {
  return new Application({ servicers: [jobServicer(), CounterServicer], retry: fast });
}

describe("a writer's change, its scheduled tasks and its task's end are one transaction", () => {
  test("a failed insert of the scheduled task leaves the state unchanged", async () => {
    const rt = await start(workflows(() => {}));
    const ctx = rt.context();
    armFault("store.insertTask", "throw");
    await expect(Shop.ref("s").order(ctx, { amount: 3 })).rejects.toThrow(/fault injected at store.insertTask/);
    expect(rt.listTasks({ limit: 10 })).toEqual([]);
    expect(await Shop.ref("s").get(ctx)).toEqual({ charges: [], log: [] });
    // The same call succeeds once the store works again: both parts are there.
    await Shop.ref("s").order(ctx, { amount: 3 });
    expect(rt.listTasks({ limit: 10 }).map((t) => t.method)).toEqual(["note"]);
    expect((await Shop.ref("s").get(ctx)).charges).toEqual([3]);
  });

  test("a failed state write schedules no task", async () => {
    const rt = await start(workflows(() => {}));
    armFault("store.writeState", "throw");
    await expect(Shop.ref("s").order(rt.context(), { amount: 3 })).rejects.toThrow(/fault injected at store.writeState/);
    expect(rt.listTasks({ limit: 10 })).toEqual([]);
  });

  test("a writer task whose completion fails to commit applies its change once, on the retry", async () => {
    const rt = await start(counterApp());
    armFault("store.completeTask", "throw");
    const failed = next<{ outcome: string }>(rt, "attempt:end", (e) => e.outcome === "FAILED");
    const { task } = await Counter.ref("c").spawn().increment(rt.context());
    await failed;
    expect(await Counter.ref("c").get(rt.context())).toEqual({ count: 0 });
    expect(await task).toEqual({ count: 1 });
    expect(await Counter.ref("c").get(rt.context())).toEqual({ count: 1 });
    expect(rt.getTask(task.taskId.taskUuid).attempts.map((a) => a.outcome)).toEqual(["FAILED", "COMPLETED"]);
  });
});

describe("a workflow's memo commits with what it records", () => {
  test("a spawn whose memo fails to commit creates no child: the retry spawns exactly one", async () => {
    const rt = await start(workflows(() => {}, { retry: fast }));
    armFault("store.putMemo", "throw");
    const { task } = await Flow.ref("p").spawn().parent(rt.context(), {});
    expect(await task).toEqual({ child: "from child" });
    const children = rt.listTasks({ limit: 100 }).filter((t) => t.method === "child");
    expect(children).toHaveLength(1);
    expect(rt.getTask(task.taskId.taskUuid).attempts.map((a) => a.outcome)).toEqual(["FAILED", "COMPLETED"]);
  });

  test("a memoised writer call whose memo fails to commit leaves no change: the retry charges once", async () => {
    const rt = await start(workflows(() => {}, { retry: fast }));
    armFault("store.putMemo", "throw");
    const { task } = await Flow.ref("f").spawn().checkout(rt.context(), { amount: 5, helper: "atLeastOnce" });
    expect(await task).toEqual({ receipt: "receipt for 5" });
    expect((await Shop.ref("s").get(rt.context())).charges).toEqual([5]);
    expect(rt.getTask(task.taskId.taskUuid).attempts.map((a) => a.outcome)).toEqual(["FAILED", "COMPLETED"]);
  });
});

describe("readers see only what is durable", () => {
  test("a reader running while a writer's commit is in flight sees the state before it; the failed commit leaves nothing", async () => {
    const rt = await start(bank);
    const ctx = rt.context();
    await Account.ref("alice").deposit(ctx, { amount: 10 });
    let during: Promise<unknown> | undefined;
    // At the start of the group commit that carries the deposit (its change is in memory by
    // now), a reader runs; then that commit fails.
    armFault("commit.begin", () => {
      during = Account.ref("alice").balance(ctx);
      armFault("store.writeState", "throw");
    });
    await expect(Account.ref("alice").deposit(ctx, { amount: 5 })).rejects.toThrow(/fault injected/);
    expect(during).toBeDefined();
    expect(await during).toEqual({ balance: 10 });
    expect(await Account.ref("alice").balance(ctx)).toEqual({ balance: 10 });
    // A writer after the failure starts from the durable state too.
    expect(await Account.ref("alice").deposit(ctx, { amount: 1 })).toEqual({ balance: 11 });
  });
});

describe("fault points", () => {
  test("MEND_FAULTS is parsed strictly: a typo arms nothing silently", () => {
    expect(parseFaults("store.putMemo=exit@2, commit.begin=throw")).toEqual([
      ["store.putMemo", "exit", 2],
      ["commit.begin", "throw", 1],
    ]);
    expect(() => parseFaults("store.putMemo=explode")).toThrow(/not point=throw\|exit/);
  });

  test("an armed point fires on its n-th hit, once", async () => {
    const rt = await Runtime.start(bank);
    try {
      const ctx = rt.context();
      armFault("store.writeState", "throw", 2);
      await Account.ref("a").deposit(ctx, { amount: 1 });
      await expect(Account.ref("a").deposit(ctx, { amount: 1 })).rejects.toThrow(/fault injected/);
      await Account.ref("a").deposit(ctx, { amount: 1 });
      expect(await Account.ref("a").balance(ctx)).toEqual({ balance: 2 });
    } finally {
      await rt.stop();
    }
  });
});
