// The steps of a workflow, in-process on a real store: what each step records and gives back
// on a retry (memoised calls, spawns, read/write, constructors, helpers), what .always() and
// .perWorkflow() change, how ctx.loop() ends an attempt, and the errors a misuse gets.
import { describe, expect, test } from "vitest";
import { atLeastOnce, atMostOnce, AtMostOnceFailedBeforeCompleting, MendError, NotAllowed, until, z, type TaskId } from "mend";
import { Big, Cell, Job, Ledger, stepsApp, type Body } from "./apps/workflow-steps.js";
import type { Inspector } from "../src/runtime/inspector.js";
import { next, start } from "./helpers/runtimes.js";

/** Failed tasks are retried at once. */
const FAST = { initialMs: 0, jitter: false };
/** Failed tasks wait an hour: only a load runs them again. */
const SLOW = { initialMs: 3_600_000, maxMs: 3_600_000, jitter: false };

type End = { taskId: TaskId; method: string; outcome: string; error?: Error };

/** Starts the app with `body` as Job.run, spawns it, and gives the runtime and the task. */
async function run(body: Body, options: { retry?: typeof FAST; children?: string[] } = {}) {
  const rt = await start(stepsApp(body, { retry: FAST, ...options }));
  const { task } = await Job.ref("j").spawn().run(rt.context());
  return { rt, task, uuid: task.taskId.taskUuid };
}

/** A task's steps as the dashboard gets them (GET /v1/tasks/:id/steps serves this list). */
function stepsOf(rt: Awaited<ReturnType<typeof start>>, uuid: string) {
  return (rt as unknown as { inspector: Inspector }).inspector.steps(uuid);
}

async function outcomes(rt: Awaited<ReturnType<typeof start>>, uuid: string) {
  return (await rt.getTask(uuid)).attempts.map((a) => a.outcome);
}

describe("loops", () => {
  test("an iteration ends its attempt even when the body catches it; every later call in that attempt throws it again", async () => {
    const caught: unknown[] = [];
    const again: unknown[] = [];
    const { rt, task, uuid } = await run(async (ctx) => {
      try {
        for await (const i of ctx.loop("tick")) if (i === 1) break;
      } catch (e) {
        caught.push(e);
        await Cell.ref("late").add(ctx).catch((e2: unknown) => again.push(e2));
        return "swallowed";
      }
      return "done";
    });
    expect(await task).toEqual({ value: "done" });
    expect(await outcomes(rt, uuid)).toEqual(["ITERATED", "COMPLETED"]);
    expect(caught).toHaveLength(1);
    const nextIteration = caught[0] as Error;
    expect(nextIteration.name).toBe("NextIteration");
    expect(nextIteration.message).toBe('Iteration 0 of the loop "tick" is done; the workflow runs again for the next one.');
    expect(again).toEqual([nextIteration]);
    expect(await Cell.ref("late").get(rt.context())).toEqual({ n: 0 });
  });

  test("one loop may follow another: break ends each, wherever it comes", async () => {
    const seen: string[] = [];
    const { rt, task, uuid } = await run(async (ctx) => {
      for await (const i of ctx.loop("a")) {
        seen.push(`a${i}`);
        break;
      }
      for await (const i of ctx.loop("b")) {
        seen.push(`b${i}`);
        if (i === 1) break;
      }
      return seen.length;
    });
    expect(await task).toEqual({ value: 4 });
    // Loop "a" ended by break in each attempt: it records nothing and starts again at 0.
    expect(seen).toEqual(["a0", "b0", "a0", "b1"]);
    expect(await outcomes(rt, uuid)).toEqual(["ITERATED", "COMPLETED"]);
  });

  test("a loop inside another loop or inside a helper's fn is refused with NotAllowed", async () => {
    const errors: unknown[] = [];
    const { task } = await run(async (ctx) => {
      await atLeastOnce("h", ctx, async () => {
        for await (const _ of ctx.loop("in-helper"));
      }).catch((e: unknown) => errors.push(e));
      for await (const _ of ctx.loop("outer")) {
        try {
          for await (const _j of ctx.loop("inner"));
        } catch (e) {
          errors.push(e);
        }
        break;
      }
      return errors.length;
    });
    expect(await task).toEqual({ value: 2 });
    for (const e of errors) {
      expect(e).toBeInstanceOf(NotAllowed);
      expect((e as Error).message).toBe("ctx.loop() runs only at the top level of a workflow: not inside another loop or a helper's fn.");
    }
  });

  test("a loop's iterator keeps the protocol: after return() it is done, and next() runs nothing", async () => {
    const { task } = await run(async (ctx) => {
      const it = ctx.loop("manual")[Symbol.asyncIterator]();
      const first = await it.next();
      const ended = await it.return!();
      const after = await it.next();
      return { first, ended, after };
    });
    expect(await task).toEqual({ value: { first: { value: 0, done: false }, ended: { done: true }, after: { done: true } } });
  });
});

describe("helpers", () => {
  test("a helper's recorded value is given back on a retry without running fn again", async () => {
    const runs = { a: 0, b: 0, c: 0 };
    const { rt, task, uuid } = await run(async (ctx) => {
      const a = await atLeastOnce("a", ctx, () => ({ v: ++runs.a }));
      const b = await atMostOnce("b", ctx, () => ++runs.b * 10);
      const c = await until("c", ctx, () => `c${++runs.c}`);
      if (ctx.attempt === 1) throw new Error("bug after the helpers");
      return [a, b, c];
    });
    expect(await task).toEqual({ value: [{ v: 1 }, 10, "c1"] });
    expect(runs).toEqual({ a: 1, b: 1, c: 1 });
    expect(await outcomes(rt, uuid)).toEqual(["FAILED", "COMPLETED"]);
  });

  test("an alias must be a non-empty string: INVALID_ARGUMENT naming the helper", async () => {
    const errors: unknown[] = [];
    const { task } = await run(async (ctx) => {
      await atLeastOnce("", ctx, () => 1).catch((e: unknown) => errors.push(e));
      await atMostOnce(5 as never, ctx, () => 1).catch((e: unknown) => errors.push(e));
      await until(undefined as never, ctx, () => 1).catch((e: unknown) => errors.push(e));
      try {
        for await (const _ of ctx.loop(""));
      } catch (e) {
        errors.push(e);
      }
      return errors.length;
    });
    expect(await task).toEqual({ value: 4 });
    expect(errors.map((e) => [e instanceof MendError && e.code, (e as Error).message])).toEqual([
      ["INVALID_ARGUMENT", "atLeastOnce() needs a non-empty alias."],
      ["INVALID_ARGUMENT", "atMostOnce() needs a non-empty alias."],
      ["INVALID_ARGUMENT", "until() needs a non-empty alias."],
      ["INVALID_ARGUMENT", "ctx.loop() needs a non-empty alias."],
    ]);
  });

  test("atMostOnce runs fn again after an error of any of its retryable classes, and not after another", async () => {
    const errors = [new TypeError("refused: nothing sent"), new Error("failed halfway")];
    let runs = 0;
    const { rt, task, uuid } = await run(async (ctx) => {
      try {
        return await atMostOnce("send", ctx, () => {
          runs++;
          throw errors.shift()!;
        }, { retryableErrors: [RangeError, TypeError] });
      } catch (e) {
        if (e instanceof AtMostOnceFailedBeforeCompleting) return "given up";
        throw e;
      }
    });
    expect(await task).toEqual({ value: "given up" });
    expect(runs).toBe(2);
    expect((await rt.getTask(uuid)).attempts.map((a) => [a.outcome, a.error?.name, a.error?.message])).toEqual([
      ["FAILED", "TypeError", "refused: nothing sent"],
      ["FAILED", "Error", "failed halfway"],
      ["COMPLETED", undefined, undefined],
    ]);
  });

  test("atMostOnce with no options lets fn's error through as it is, and never runs fn again", async () => {
    let runs = 0;
    const { rt, task, uuid } = await run(async (ctx) => {
      try {
        return await atMostOnce("send", ctx, () => {
          runs++;
          throw new Error("boom");
        });
      } catch (e) {
        if (e instanceof AtMostOnceFailedBeforeCompleting) return e.message;
        throw e;
      }
    });
    expect(await task).toEqual({ value: 'atMostOnce("send") was started by an earlier attempt that did not complete it; it will not run again.' });
    expect(runs).toBe(1);
    expect((await rt.getTask(uuid)).attempts.map((a) => [a.outcome, a.error?.message])).toEqual([
      ["FAILED", "boom"],
      ["COMPLETED", undefined],
    ]);
  });

  test("until's value that does not match its schema fails the attempt with INVALID_STEP", async () => {
    const rt = await start(stepsApp(async (ctx) => until("typed", ctx, () => "text", { schema: z.number() }), { retry: SLOW }));
    const failed = next<End>(rt, "attempt:end", (e) => e.method === "run");
    await Job.ref("j").spawn().run(rt.context());
    const { outcome, error } = await failed;
    expect(outcome).toBe("FAILED");
    expect((error as MendError).code).toBe("INVALID_STEP");
    expect(error!.message).toMatch(/^The value of until\("typed"\) does not match its schema: ✖ Invalid input: expected number, received string/);
  });
});

describe("calls and spawns", () => {
  test("a workflow that calls a workflow gets its response; the child task is made once across retries", async () => {
    const children: string[] = [];
    const { rt, task, uuid } = await run(async (ctx) => {
      const { tag } = await Job.ref("kid").child(ctx, { tag: "direct" });
      if (ctx.attempt === 1) throw new Error("bug after the child");
      return tag;
    }, { children });
    expect(await task).toEqual({ value: "direct" });
    expect(children).toEqual(["direct"]);
    expect(await rt.listTasks({ method: "child", limit: 10 })).toHaveLength(1);
    expect(await outcomes(rt, uuid)).toEqual(["FAILED", "COMPLETED"]);
  });

  test(".perWorkflow() on a called workflow makes one child for the whole loop, not one per iteration", async () => {
    const children: string[] = [];
    const tags: string[] = [];
    const { rt, task } = await run(async (ctx) => {
      for await (const i of ctx.loop("twice")) {
        tags.push((await Job.ref("kid").perWorkflow("kid").child(ctx, { tag: `iteration ${i}` })).tag);
        if (i === 1) break;
      }
      return tags.length;
    }, { children });
    expect(await task).toEqual({ value: 2 });
    expect(tags).toEqual(["iteration 0", "iteration 0"]);
    expect(children).toEqual(["iteration 0"]);
    expect(await rt.listTasks({ method: "child", limit: 10 })).toHaveLength(1);
  });

  test("a spawn is made once across retries; .always() spawns on every attempt", async () => {
    const children: string[] = [];
    const { rt, task } = await run(async (ctx) => {
      const once = await Job.ref("once").spawn().child(ctx, { tag: `once ${ctx.attempt}` });
      const always = await Job.ref("always").always().spawn().child(ctx, { tag: `always ${ctx.attempt}` });
      await once.task;
      await always.task;
      if (ctx.attempt === 1) throw new Error("bug after the spawns");
      return ctx.attempt;
    }, { children });
    expect(await task).toEqual({ value: 2 });
    expect(children.sort()).toEqual(["always 1", "always 2", "once 1"]);
    expect(await rt.listTasks({ method: "child", limit: 10 })).toHaveLength(3);
  });
});

describe("read() and write()", () => {
  test("read() and write() are recorded and given back on a retry; with .always() they run on every attempt", async () => {
    const seen: unknown[] = [];
    const { rt, task } = await run(async (ctx) => {
      const fresh = await Cell.ref("c").always().read(ctx);
      const kept = await Cell.ref("c").read(ctx);
      const every = await Cell.ref("w").always().write(ctx, (s) => (s.n += 1));
      const once = await Cell.ref("v").write(ctx, (s) => (s.n += 1));
      seen.push({ fresh: fresh.n, kept: kept.n, every, once });
      if (ctx.attempt === 1) {
        await Cell.ref("c").always().add(ctx, { by: 5 });
        throw new Error("bug after the reads");
      }
      return ctx.attempt;
    });
    expect(await task).toEqual({ value: 2 });
    expect(seen).toEqual([
      { fresh: 0, kept: 0, every: 1, once: 1 },
      { fresh: 5, kept: 0, every: 2, once: 1 },
    ]);
    const ctx = rt.context();
    expect([await Cell.ref("c").get(ctx), await Cell.ref("w").get(ctx), await Cell.ref("v").get(ctx)]).toEqual([{ n: 5 }, { n: 2 }, { n: 1 }]);
  });

  test("a step whose alias now names a read or write of another instance fails with StepMismatch naming both", async () => {
    const rt = await start(
      stepsApp(async (ctx) => {
        await Cell.ref("a").idempotently("r").read(ctx);
        await Cell.ref("a").idempotently("w").write(ctx, (s) => s.n);
        throw new Error("bug after the steps");
      }, { retry: SLOW }),
    );
    const first = next<End>(rt, "attempt:end", (e) => e.method === "run");
    const { task } = await Job.ref("j").spawn().run(rt.context());
    expect((await first).error!.message).toBe("bug after the steps");

    const mismatch = async (body: Body) => {
      const ended = next<End>(rt, "attempt:end", (e) => e.method === "run");
      await rt.load(stepsApp(body, { retry: SLOW }));
      const { error } = await ended;
      expect(error!.name).toBe("StepMismatch");
      return error!.message;
    };
    expect(await mismatch(async (ctx) => Cell.ref("b").idempotently("r").read(ctx))).toMatch(
      /^The memo of this workflow holds read of Cell\('a'\) under the alias "r", but the code now asks for read of Cell\('b'\) there\./,
    );
    expect(
      await mismatch(async (ctx) => {
        await Cell.ref("a").idempotently("r").read(ctx);
        return Cell.ref("b").idempotently("w").write(ctx, (s) => s.n);
      }),
    ).toMatch(/^The memo of this workflow holds write of Cell\('a'\) under the alias "w", but the code now asks for write of Cell\('b'\) there\./);
    expect((await rt.getTask(task.taskId.taskUuid)).task.status).toBe("SCHEDULED_RETRY");
  });

  test("a write() whose fn returns what cannot be stored fails with an error naming the step", async () => {
    const rt = await start(stepsApp(async (ctx) => Cell.ref("c").write(ctx, () => () => "a function"), { retry: SLOW }));
    const failed = next<End>(rt, "attempt:end", (e) => e.method === "run");
    await Job.ref("j").spawn().run(rt.context());
    expect((await failed).error!.message).toBe("The value of write of Cell('c') cannot be stored: the value is a function.");
  });

  test("a read() too large to record fails the step with an error naming the read", async () => {
    const rt = await start(stepsApp(async (ctx) => (await Big.ref("b").read(ctx)).text.length, { retry: SLOW }), { maxValueBytes: 1_000 });
    const failed = next<End>(rt, "attempt:end", (e) => e.method === "run");
    await Job.ref("j").spawn().run(rt.context());
    expect((await failed).error!.message).toMatch(/^The state read by read of Big\('b'\) is .* as JSON, over the limit of .* \(maxValueBytes\)\.$/);
  });
});

describe("constructors without an id", () => {
  test("the same .idempotently(alias) gives the same instance, constructed once", async () => {
    const { rt, task } = await run(async (ctx) => {
      const [first, made] = await Ledger.idempotently("mine").open(ctx, { owner: "first" });
      const [second, again] = await Ledger.idempotently("mine").open(ctx, { owner: "first" });
      return { same: first.stateId === second.stateId, made, again, id: first.stateId };
    });
    const { value } = (await task) as { value: { same: boolean; made: unknown; again: unknown; id: string } };
    expect(value).toMatchObject({ same: true, made: { owner: "first" }, again: { owner: "first" } });
    expect(await Ledger.ref(value.id).idempotently("probe").open(rt.context(), { owner: "x" }).catch((e: Error) => e.name)).toBe("StateAlreadyConstructed");
  });

  test(".perWorkflow(alias) in a loop gives every iteration the instance the first one made", async () => {
    const ids: string[] = [];
    const { task } = await run(async (ctx) => {
      for await (const i of ctx.loop("l")) {
        const [ledger, made] = await Ledger.perWorkflow("p").open(ctx, { owner: `iteration ${i}` });
        ids.push(`${ledger.stateId} ${made.owner}`);
        if (i === 1) break;
      }
      return ids.length;
    });
    expect(await task).toEqual({ value: 2 });
    expect(ids).toHaveLength(2);
    expect(ids[1]).toBe(ids[0]);
    expect(ids[0]).toMatch(/ iteration 0$/);
  });

  test("unnamed constructors get an id each, the same ones on a retry", async () => {
    const ids: string[][] = [];
    const { rt, task } = await run(async (ctx) => {
      const [x] = await Ledger.open(ctx, { owner: "x" });
      const [y] = await Ledger.open(ctx, { owner: "y" });
      ids.push([x.stateId, y.stateId]);
      if (ctx.attempt === 1) throw new Error("bug after constructing");
      return ctx.attempt;
    });
    expect(await task).toEqual({ value: 2 });
    expect(ids[0]![0]).not.toBe(ids[0]![1]);
    expect(ids[1]).toEqual(ids[0]);
    expect(await rt.listTasks({ limit: 10 })).toHaveLength(1);
  });

  test("a constructor of another method added before an unnamed one leaves its id as it was", async () => {
    const ids: string[] = [];
    const rt = await start(
      stepsApp(async (ctx) => {
        const [ledger] = await Ledger.open(ctx, { owner: "v1" });
        ids.push(ledger.stateId);
        throw new Error("bug after opening");
      }, { retry: SLOW }),
    );
    const first = next<End>(rt, "attempt:end", (e) => e.method === "run");
    const { task } = await Job.ref("j").spawn().run(rt.context());
    await first;
    await rt.load(
      stepsApp(async (ctx) => {
        const [empty] = await Ledger.openEmpty(ctx);
        const [ledger, made] = await Ledger.open(ctx, { owner: "v2" });
        ids.push(ledger.stateId);
        return { made, other: empty.stateId !== ledger.stateId };
      }, { retry: SLOW }),
    );
    // The retry gets the recorded response of the first attempt's constructor: it did not run again.
    expect(await task).toEqual({ value: { made: { owner: "v1" }, other: true } });
    expect(ids[1]).toBe(ids[0]);
  });
});

describe("the steps as the dashboard shows them", () => {
  test("each kind of step is recorded under its alias, with what it stands for, its status and value", async () => {
    const { rt, task, uuid } = await run(async (ctx) => {
      await Cell.ref("a").read(ctx);
      await Cell.ref("a").write(ctx, (s) => (s.n += 2));
      await Cell.ref("a").add(ctx, { by: 1 });
      await Cell.ref("a").take(ctx, { by: 10 }).catch(() => undefined);
      await Job.ref("k").spawn().child(ctx, { tag: "t" });
      await atLeastOnce("al", ctx, () => 1);
      await atMostOnce("am", ctx, () => 2);
      await until("u", ctx, () => 3);
      for await (const i of ctx.loop("l")) if (i === 1) break;
      return "done";
    });
    expect(await task).toEqual({ value: "done" });
    const [child] = await rt.listTasks({ method: "child", limit: 10 });
    const steps = (await stepsOf(rt, uuid)).map(({ alias, kind, step, status, value }) => ({ alias, kind, step, status, value }));
    expect(steps).toEqual([
      { alias: "Cell('a').read()#1", kind: "read", step: "read of Cell('a')", status: "completed", value: { n: 0 } },
      { alias: "Cell('a').write()#1", kind: "write", step: "write of Cell('a')", status: "completed", value: 2 },
      { alias: "Cell('a').add#1", kind: "call", step: "Cell('a').add()", status: "completed", value: { n: 3 } },
      { alias: "Cell('a').take#1", kind: "call", step: "Cell('a').take()", status: "failed", value: { error: { type: "TooLittle", n: 3 }, message: "only 3" } },
      { alias: "Job('k').child#1", kind: "spawn", step: "spawn of Job('k').child()", status: "completed", value: child!.taskId },
      { alias: "al", kind: "atLeastOnce", step: "atLeastOnce()", status: "completed", value: 1 },
      { alias: "am", kind: "atMostOnce", step: "atMostOnce()", status: "completed", value: 2 },
      { alias: "u", kind: "until", step: "until()", status: "completed", value: 3 },
      { alias: "l", kind: "loop", step: "ctx.loop()", status: "started", value: { iteration: 1 } },
    ]);
    expect(await outcomes(rt, uuid)).toEqual(["ITERATED", "COMPLETED"]);
  });

  test("an atMostOnce that ended with a retryable error shows failed until it runs again", async () => {
    const rt = await start(
      stepsApp(async (ctx) => atMostOnce("send", ctx, () => { throw new TypeError("refused"); }, { retryableErrors: [TypeError] }), { retry: SLOW }),
    );
    const failed = next<End>(rt, "attempt:end", (e) => e.method === "run");
    const { task } = await Job.ref("j").spawn().run(rt.context());
    expect((await failed).error!.message).toBe("refused");
    expect((await stepsOf(rt, task.taskId.taskUuid)).map((s) => [s.alias, s.kind, s.step, s.status])).toEqual([["send", "atMostOnce", "atMostOnce()", "failed"]]);
  });

  test("a helper inside until's fn is recorded under until's alias, and placed within it", async () => {
    let evaluations = 0;
    const { rt, task, uuid } = await run(async (ctx) =>
      until("ready", ctx, async () => {
        evaluations++;
        const first = await atLeastOnce("first", ctx, () => evaluations);
        return evaluations >= 2 && first;
      }, { maxInterval: { ms: 1 } }),
    );
    expect(await task).toEqual({ value: 1 });
    expect((await stepsOf(rt, uuid)).map((s) => [s.alias, s.kind, s.status, s.value, s.within])).toEqual([
      ["ready/first", "atLeastOnce", "completed", 1, "ready"],
      ["ready", "until", "completed", 1, undefined],
    ]);
  });
});
