import { afterEach, describe, expect, test, vi } from "vitest";
import { Application, atLeastOnce, atMostOnce, AtMostOnceFailedBeforeCompleting, defineApi, NotAllowed, z, type TaskId } from "mend";
import { aliasOf, describeStep, newScope } from "../src/runtime/memo.js";
import { Account, Bank } from "../fixtures/bank/src/api.js";
import bank from "../fixtures/bank/src/main.js";
import { Flow, Shop, app, type At } from "./apps/workflows.js";
import { next, start } from "./helpers/runtimes.js";

/** Failed tasks wait an hour: only a load or an explicit retry runs them again. */
const SLOW = { initialMs: 3_600_000, maxMs: 3_600_000 };
/** Failed tasks are retried at once. */
const FAST = { initialMs: 0 };

type End = { taskId: TaskId; outcome: string; error?: Error };
const failed = (e: End) => e.outcome === "FAILED";

/** Records every point the app passes; `bugs` throw like a bug at their point, `times` times (default: always). */
function recorder(bugs: Record<string, number> = {}) {
  const seen: string[] = [];
  const at: At = (point) => {
    if (bugs[point] !== undefined && bugs[point] !== 0) {
      bugs[point]--;
      throw new Error(`bug at ${point}`);
    }
    seen.push(point);
  };
  return { at, seen, count: (point: string) => seen.filter((p) => p === point).length };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("aliases", () => {
  test("a default alias counts the calls of its target within its scope; a given alias is kept", () => {
    const root = newScope("");
    const alice = { stateType: "Account", stateId: "alice", method: "charge" };
    const bob = { ...alice, stateId: "bob" };
    expect([aliasOf(root, alice, undefined), aliasOf(root, bob, undefined), aliasOf(root, alice, undefined)]).toEqual([
      "Account('alice').charge#1",
      "Account('bob').charge#1",
      "Account('alice').charge#2",
    ]);
    // A helper's fn and a loop's iteration each count afresh, under their own prefix.
    expect(aliasOf(newScope("poll[3]/"), alice, undefined)).toBe("poll[3]/Account('alice').charge#1");
    expect(aliasOf(newScope("email/"), alice, "pay")).toBe("email/pay");
    expect([describeStep("call", alice), describeStep("spawn", alice), describeStep("atMostOnce"), describeStep("loop")]).toEqual([
      "Account('alice').charge()",
      "spawn of Account('alice').charge()",
      "atMostOnce()",
      "ctx.loop()",
    ]);
  });
});

describe("memoised calls and hotfixes", () => {
  test.each(["atLeastOnce", "atMostOnce"] as const)(
    "a checkout that fails after the charge is fixed by a new version: one charge, one email (%s)",
    async (helper) => {
      // With atLeastOnce the bug is in the email's fn; with atMostOnce it is just before it
      // (a failure inside atMostOnce's fn would, by design, never run it again).
      const bug = helper === "atLeastOnce" ? "email" : "render";
      const v1 = recorder({ [bug]: -1 });
      const rt = await start(app(v1.at, { retry: SLOW }));
      const failure = next<End>(rt, "attempt:end", failed);
      const { task } = await Flow.ref("f").spawn().checkout(rt.context(), { amount: 5, helper });
      expect((await failure).error!.message).toBe(`bug at ${bug}`);
      expect((await Shop.ref("s").get(rt.context())).charges).toEqual([5]);

      const v2 = recorder();
      await rt.load(app(v2.at, { retry: SLOW }));
      expect(await task).toEqual({ receipt: "receipt for 5" });
      expect((await Shop.ref("s").get(rt.context())).charges).toEqual([5]);
      expect(v1.count("charge") + v2.count("charge")).toBe(1);
      expect(v2.count("email")).toBe(1);
      expect((await rt.getTask(task.taskId.taskUuid)).attempts.map((a) => [a.version, a.outcome])).toEqual([
        ["v1", "FAILED"],
        ["v2", "COMPLETED"],
      ]);
    },
  );

  test("a step whose alias now names a different call fails the attempt with an error naming both", async () => {
    const rt = await start(
      app(() => {}, {
        retry: SLOW,
        flow: {
          async checkout(ctx, req) {
            await Shop.ref("s").idempotently("pay").charge(ctx, { amount: req.amount });
            throw new Error("bug after paying");
          },
        },
      }),
    );
    const first = next<End>(rt, "attempt:end", failed);
    const { task } = await Flow.ref("f").spawn().checkout(rt.context(), { amount: 5, helper: "atLeastOnce" });
    expect((await first).error!.message).toBe("bug after paying");

    const second = next<End>(rt, "attempt:end", failed);
    await rt.load(
      app(() => {}, {
        retry: SLOW,
        flow: {
          async checkout(ctx, req) {
            await Shop.ref("s").idempotently("pay").refund(ctx, { amount: req.amount });
            return { receipt: "refunded" };
          },
        },
      }),
    );
    const { error } = await second;
    expect(error!.name).toBe("StepMismatch");
    expect(error!.message).toContain(`holds Shop('s').charge() under the alias "pay"`);
    expect(error!.message).toContain("now asks for Shop('s').refund() there");
    expect((await rt.getTask(task.taskId.taskUuid)).task.status).toBe("SCHEDULED_RETRY");
    expect((await Shop.ref("s").get(rt.context())).charges).toEqual([5]);
  });

  test("a declared error is recorded too: the retry gets the same error without calling again", async () => {
    const points = recorder();
    let bugs = 1;
    const rt = await start(
      app(points.at, {
        retry: FAST,
        flow: {
          async checkout(ctx, req) {
            const error = await Shop.ref("s").refund(ctx, { amount: req.amount }).catch((e: unknown) => e);
            if (!(error instanceof Shop.RefundAborted)) throw new Error("expected RefundAborted");
            if (bugs-- > 0) throw new Error("bug after the refund");
            return { receipt: error.error.type };
          },
        },
      }),
    );
    const { task } = await Flow.ref("f").spawn().checkout(rt.context(), { amount: 5, helper: "atLeastOnce" });
    expect(await task).toEqual({ receipt: "NothingToRefund" });
    expect(points.count("refund")).toBe(1);
    expect((await rt.getTask(task.taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["FAILED", "COMPLETED"]);
  });

  test("atMostOnce runs fn again after a retryable error, and never after any other", async () => {
    const errors = [new TypeError("refused: nothing sent"), new RangeError("failed halfway")];
    let runs = 0;
    const rt = await start(
      app(() => {}, {
        retry: FAST,
        flow: {
          async once(ctx) {
            try {
              await atMostOnce("send", ctx, () => {
                runs++;
                throw errors.shift()!;
              }, { retryableErrors: [TypeError] });
            } catch (e) {
              if (e instanceof AtMostOnceFailedBeforeCompleting) return { value: "given up" };
              throw e;
            }
            return { value: "sent" };
          },
        },
      }),
    );
    const { task } = await Flow.ref("f").spawn().once(rt.context(), { helper: "atMostOnce" });
    expect(await task).toEqual({ value: "given up" });
    expect(runs).toBe(2);
    expect((await rt.getTask(task.taskId.taskUuid)).attempts.map((a) => [a.outcome, a.error?.name])).toEqual([
      ["FAILED", "TypeError"],
      ["FAILED", "RangeError"],
      ["COMPLETED", undefined],
    ]);
  });

  test("a value that cannot be stored fails the step with a clear error", async () => {
    const rt = await start(
      app(() => {}, {
        retry: SLOW,
        flow: {
          async once(ctx) {
            const value = await atLeastOnce("make", ctx, () => ({ send: () => "a function" }));
            return { value: typeof value };
          },
        },
      }),
    );
    const failure = next<End>(rt, "attempt:end", failed);
    await Flow.ref("f").spawn().once(rt.context(), { helper: "atLeastOnce" });
    expect((await failure).error!.message).toBe('The value of atLeastOnce("make") cannot be stored: the value.send is a function.');
  });

  test("the helpers refuse a context that is not a running workflow's", async () => {
    const rt = await start(app());
    await expect(atLeastOnce("x", rt.context() as never, () => 1)).rejects.toBeInstanceOf(NotAllowed);
  });
});

describe("spawning from a workflow", () => {
  test("a child task is spawned once even when the parent is retried", async () => {
    const points = recorder({ spawned: 1 });
    const rt = await start(app(points.at, { retry: FAST }));
    const { task } = await Flow.ref("p").spawn().parent(rt.context(), {});
    expect(await task).toEqual({ child: "from child" });
    expect(await rt.listTasks({ method: "child", limit: 10 })).toHaveLength(1);
    expect(points.count("child")).toBe(1);
    expect((await rt.getTask(task.taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["FAILED", "COMPLETED"]);
  });
});

describe("until", () => {
  test("re-evaluates with fresh reads until truthy, then keeps the value across retries", async () => {
    let checked!: () => void;
    const twice = new Promise<void>((resolve) => (checked = resolve));
    const points = recorder({ "after-until": 1 });
    const at: At = (point, detail) => {
      points.at(point, detail);
      if (points.count("check") === 2) checked();
    };
    const rt = await start(app(at, { retry: FAST }));
    const { task } = await Flow.ref("f").spawn().ready(rt.context());
    await twice;
    await Shop.ref("s").note(rt.context(), { line: "ready" });
    expect(await task).toEqual({ line: "ready" });
    // The retry after the bug did not evaluate again.
    expect((await rt.getTask(task.taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["FAILED", "COMPLETED"]);
    const checks = points.count("check");
    expect(checks).toBeGreaterThanOrEqual(3);
    expect(points.seen.lastIndexOf("check")).toBeLessThan(points.seen.indexOf("after-until"));
  });
});

describe("loops", () => {
  test("between iterations the task is SCHEDULED_ITERATION, due an interval later", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"], now: new Date("2026-01-01T00:00:00Z") });
    const points = recorder();
    const rt = await start(app(points.at));
    const iterated = () => next<End>(rt, "attempt:end", (e) => e.outcome === "ITERATED");
    const first = iterated();
    const t0 = Date.now();
    const { task } = await Flow.ref("f").spawn().poll(rt.context(), { iterations: 3, intervalMs: 10_000 });
    await first;
    expect((await rt.getTask(task.taskId.taskUuid)).task).toMatchObject({ status: "SCHEDULED_ITERATION", dueAt: t0 + 10_000, iteration: 1 });

    let started = 0;
    rt.on("attempt:start", () => started++);
    await vi.advanceTimersByTimeAsync(9_999);
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toBe(0);
    const second = iterated();
    await vi.advanceTimersByTimeAsync(1);
    await second;
    expect((await rt.getTask(task.taskId.taskUuid)).task).toMatchObject({ status: "SCHEDULED_ITERATION", dueAt: t0 + 20_000, iteration: 2 });

    await vi.advanceTimersByTimeAsync(10_000);
    expect(await task).toEqual({ iterations: 3 });
    expect(points.count("iteration")).toBe(3);
    expect((await Shop.ref("s").get(rt.context())).log).toEqual(["iteration 0", "iteration 1", "iteration 2"]);
    expect((await rt.getTask(task.taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["ITERATED", "ITERATED", "COMPLETED"]);
  });

  test("a failed iteration is retried from that iteration, with its own memo", async () => {
    const points = recorder();
    let failAt2 = true;
    const at: At = (point, detail) => {
      if (point === "iteration" && detail.i === 2 && failAt2) {
        failAt2 = false;
        throw new Error("bug in iteration 2");
      }
      points.at(point, detail);
    };
    const rt = await start(app(at, { retry: FAST }));
    const { task } = await Flow.ref("f").spawn().poll(rt.context(), { iterations: 4 });
    expect(await task).toEqual({ iterations: 4 });
    expect(points.seen.filter((p) => p === "iteration")).toHaveLength(4);
    expect((await Shop.ref("s").get(rt.context())).log).toEqual(["iteration 0", "iteration 1", "iteration 2", "iteration 3"]);
    expect((await rt.getTask(task.taskId.taskUuid)).attempts.map((a) => a.outcome)).toEqual(["ITERATED", "ITERATED", "FAILED", "ITERATED", "COMPLETED"]);
  });
});

describe("effect validation", () => {
  test("'enabled' runs a writer twice, keeps one change and one scheduled task, and says so each time", async () => {
    const points = recorder();
    const rt = await start(app(points.at), { effectValidation: "enabled" });
    const events: { method: string; message: string }[] = [];
    rt.on("effect-validation", (e) => events.push(e));
    await Shop.ref("s").order(rt.context(), { amount: 5 });
    expect(points.count("order")).toBe(2);
    // (The task it scheduled may have run by now, and said so too.)
    expect(events.filter((e) => e.method === "Shop.order")).toEqual([{ method: "Shop.order", message: expect.stringContaining("Ran Shop.order twice"), differences: [] }]);
    await Shop.ref("s").charge(rt.context(), { amount: 7 });
    await Shop.ref("s").charge(rt.context(), { amount: 7 });
    expect(points.count("charge")).toBe(4);
    expect(events.filter((e) => e.method === "Shop.charge")).toHaveLength(2);
    expect((await Shop.ref("s").get(rt.context())).charges).toEqual([5, 7, 7]);
    expect(await rt.listTasks({ method: "note", limit: 10 })).toHaveLength(1);
  });

  test.each(["enabled", "quiet"] as const)("a transaction under '%s' applies its writes once, called directly and as a task", async (mode) => {
    const rt = await start(bank, { effectValidation: mode });
    const ctx = rt.context();
    await Account.ref("alice").deposit(ctx, { amount: 10 });
    await Bank.ref("b").transfer(ctx, { from: "alice", to: "bob", amount: 3 });
    expect(await Account.ref("alice").balance(ctx)).toEqual({ balance: 7 });
    expect(await Account.ref("bob").balance(ctx)).toEqual({ balance: 3 });
    const { task } = await Bank.ref("b").spawn().transfer(ctx, { from: "alice", to: "bob", amount: 2 });
    await task;
    expect(await Account.ref("alice").balance(ctx)).toEqual({ balance: 5 });
    expect(await Account.ref("bob").balance(ctx)).toEqual({ balance: 5 });
  });

  test("'quiet' says nothing while a method's two runs agree, and names what differs when they do; 'disabled' (the default) runs once", async () => {
    const quiet = recorder();
    const rt = await start(app(quiet.at), { effectValidation: "quiet" });
    const events: { method: string; message: string; differences: string[] }[] = [];
    rt.on("effect-validation", (e) => events.push(e));
    await Shop.ref("s").charge(rt.context(), { amount: 1 });
    await Shop.ref("s").charge(rt.context(), { amount: 1 });
    expect(quiet.count("charge")).toBe(4);
    expect(events).toEqual([]);

    // A writer whose result depends on a counter in memory: each run leaves a different state.
    let calls = 0;
    const { Tally } = defineApi({
      Tally: {
        state: { n: z.number().default(0) },
        methods: { tick: { kind: "writer", request: {}, response: { n: z.number() } } },
      },
    });
    const tally = await start(
      new Application({ servicers: [Tally.servicer({ async tick(ctx, state) { state.n = ++calls; return { n: state.n }; } })] }),
      { effectValidation: "quiet" },
    );
    const seen: { method: string; message: string; differences: string[] }[] = [];
    tally.on("effect-validation", (e) => seen.push(e));
    expect(await Tally.ref("t").tick(tally.context())).toEqual({ n: 2 });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.method).toBe("Tally.tick");
    expect(seen[0]!.differences).toEqual([
      `its response differs (first COMPLETED {"n":1}, then COMPLETED {"n":2})`,
      `it left Tally('t') differently (first {"n":1}, then {"n":2})`,
    ]);
    expect(seen[0]!.message).toMatch(/^Tally\.tick did not do the same thing on its two runs/);

    const plain = recorder();
    const other = await start(app(plain.at));
    await Shop.ref("s").charge(other.context(), { amount: 1 });
    expect(plain.count("charge")).toBe(1);
  });
});
