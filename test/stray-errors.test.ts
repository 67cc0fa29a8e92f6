// Errors the app's code lets escape where nobody awaits them, in-process: each goes to the
// call or attempt whose code raised it; one that belongs to nobody goes to the handler, to
// another listener, or ends the process as Node would. (test/stray.test.ts drives the same
// through `mend serve`.)
//
// The test runner listens for such errors too and fails the run on any: while a test here
// runs, its listeners are taken off and only mend's (and the test's own) are on.
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { Application } from "mend";
import { catchStrayErrors, handleUnownedErrors, runOwned, type ErrorOwner } from "../src/runtime/stray.js";
import { Stray } from "./apps/stray/main.js";
import strayApp from "./apps/stray/main.js";
import { start, within } from "./helpers/runtimes.js";

type Event = "uncaughtException" | "unhandledRejection";
const EVENTS: Event[] = ["uncaughtException", "unhandledRejection"];
let runners: Map<Event, NodeJS.UncaughtExceptionListener[]>;

beforeEach(() => {
  runners = new Map(EVENTS.map((event) => [event, process.listeners(event as "uncaughtException") as NodeJS.UncaughtExceptionListener[]]));
  for (const event of EVENTS) process.removeAllListeners(event);
});
afterEach(() => {
  for (const event of EVENTS) {
    process.removeAllListeners(event);
    for (const listener of runners.get(event)!) process.on(event as "uncaughtException", listener);
  }
  vi.restoreAllMocks();
});

/** An owner that records what it was given, and takes errors while `open`. */
function owner(open = true): ErrorOwner & { taken: Error[]; open: boolean } {
  const o = {
    taken: [] as Error[],
    open,
    fail(error: Error) {
      if (!o.open) return false;
      o.taken.push(error);
      return true;
    },
  };
  return o;
}

/** The next error of `event` that reaches a listener of the test's own (added after mend's). */
function nextSeen(event: Event): Promise<unknown> {
  return within(new Promise((resolve) => process.once(event as "uncaughtException", resolve)), `an ${event} event`);
}

describe("catchStrayErrors", () => {
  test("listens once however many runtimes run, and stops when the last one stops", () => {
    const first = catchStrayErrors();
    expect(process.listenerCount("uncaughtException")).toBe(1);
    expect(process.listenerCount("unhandledRejection")).toBe(1);
    const second = catchStrayErrors();
    expect(process.listenerCount("uncaughtException")).toBe(1);
    expect(process.listenerCount("unhandledRejection")).toBe(1);
    first();
    // Stopping twice counts once: the second runtime still has its listeners.
    first();
    expect(process.listenerCount("uncaughtException")).toBe(1);
    expect(process.listenerCount("unhandledRejection")).toBe(1);
    second();
    expect(process.listenerCount("uncaughtException")).toBe(0);
    expect(process.listenerCount("unhandledRejection")).toBe(0);
  });
});

describe("an error escaping the code of a call or attempt", () => {
  test("a throw from a timer goes to the owner whose code set the timer", async () => {
    const stop = catchStrayErrors();
    const mine = owner();
    const seen = nextSeen("uncaughtException");
    runOwned(mine, () => {
      setTimeout(() => {
        throw new Error("thrown from a timer");
      }, 1);
    });
    await seen;
    stop();
    expect(mine.taken.map((e) => e.message)).toEqual(["thrown from a timer"]);
  });

  test("a rejection nobody handles goes to its owner, made an Error if it is not one", async () => {
    const stop = catchStrayErrors();
    const mine = owner();
    const seen = nextSeen("unhandledRejection");
    runOwned(mine, () => {
      void Promise.reject("a bare string");
    });
    await seen;
    stop();
    expect(mine.taken).toHaveLength(1);
    expect(mine.taken[0]).toBeInstanceOf(Error);
    expect(mine.taken[0]!.message).toContain("a bare string");
  });

  test("runOwned gives back what its function returns", () => {
    expect(runOwned(owner(), () => 42)).toBe(42);
  });
});

describe("an error that belongs to nobody", () => {
  // Each case: the owner has ended (it can no longer take it), or there is none.
  for (const [name, raise, event] of [
    ["a throw from a timer", () => setTimeout(() => { throw new Error("nobody's"); }, 1), "uncaughtException"],
    ["a rejection", () => void Promise.reject(new Error("nobody's")), "unhandledRejection"],
  ] as const) {
    test(`${name} of an ended owner goes to the handler, not to the owner`, async () => {
      const stop = catchStrayErrors();
      const handled: Error[] = [];
      handleUnownedErrors((error) => handled.push(error));
      const ended = owner(false);
      const seen = nextSeen(event);
      runOwned(ended, raise);
      await seen;
      stop();
      handleUnownedErrors(undefined as unknown as (error: Error) => void);
      expect(ended.taken).toEqual([]);
      expect(handled.map((e) => e.message)).toEqual(["nobody's"]);
    });

    test(`${name}, with no handler but another listener, is left to that listener: the process goes on`, async () => {
      const stop = catchStrayErrors();
      const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
      const write = vi.spyOn(process.stderr, "write");
      const seen = nextSeen(event);
      raise();
      expect((await seen) as Error).toMatchObject({ message: "nobody's" });
      stop();
      expect(exit).not.toHaveBeenCalled();
      expect(write.mock.calls.filter(([text]) => String(text).startsWith("Uncaught"))).toEqual([]);
    });

    test(`${name}, with no handler and no other listener, is printed and ends the process with 1`, async () => {
      const stop = catchStrayErrors();
      const exited = new Promise<unknown>((resolve) => {
        vi.spyOn(process, "exit").mockImplementation(((code: number) => resolve(code)) as never);
      });
      const printed: string[] = [];
      vi.spyOn(process.stderr, "write").mockImplementation(((text: string) => printed.push(text)) as never);
      raise();
      expect(await within(exited, "process.exit")).toBe(1);
      stop();
      vi.restoreAllMocks();
      expect(printed.join("")).toMatch(/^Uncaught Error: nobody's\n {4}at /);
    });
  }
});

describe("in a runtime", () => {
  const app = new Application({ servicers: strayApp.servicers });

  test("a writer whose timer throws fails with that error; its change is not kept and the instance is free", async () => {
    const rt = await start(app);
    await expect(Stray.ref("w").throwsLater(rt.context())).rejects.toThrow("thrown from a timer");
    expect(await Stray.ref("w").bump(rt.context())).toEqual({ n: 1 });
  });

  test("a workflow's stray rejection fails its attempt, which is retried later", async () => {
    const rt = await start(app);
    const { task } = await Stray.ref("f").spawn().rejects(rt.context());
    const ended = await new Promise<{ outcome: string }>((resolve) => {
      const off = rt.on("attempt:end", (e: { outcome: string }) => {
        off();
        resolve(e);
      });
    });
    expect(ended.outcome).toBe("FAILED");
    const info = await rt.getTask(task.taskId.taskUuid);
    expect(info.task.status).toBe("SCHEDULED_RETRY");
    expect(info.task.lastError).toBe("Error: a stray rejection");
  });
});
