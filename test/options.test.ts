// Runtime.start's options are checked before anything is opened: each bad one is a clear
// error naming it.
import { describe, expect, test } from "vitest";
import { Application, Runtime, type RuntimeOptions } from "mend";
import { Counter, CounterServicer, jobServicer } from "./apps/flaky.js";
import { start } from "./helpers/runtimes.js";

const app = new Application({ servicers: [jobServicer(), CounterServicer] });

describe("Runtime.start refuses a bad option, naming it", () => {
  const bad: [string, RuntimeOptions, string][] = [
    ["a store that is not a PostgreSQL URL", { store: "/tmp/mend.sqlite" }, "store must be a PostgreSQL URL (postgresql://user@host/db); an SQLite store is given with path or directory."],
    ["a store that is not a string", { store: 42 as unknown as string }, "store must be a PostgreSQL URL"],
    ["a store and a path", { store: "postgresql://u@localhost/db", path: "/tmp/x.sqlite" }, "store (PostgreSQL) and path or directory (SQLite) name two stores: give one."],
    ["a store and a directory", { store: "postgresql://u@localhost/db", directory: "/tmp" }, "name two stores"],
    ["recovery on PostgreSQL", { store: "postgresql://u@localhost/db", recovery: {} } as RuntimeOptions, "recovery applies to an SQLite store only."],
    ["a lease under 100 ms", { leaseMs: 99 }, "leaseMs must be an integer of at least 100, got 99."],
    ["a lease that is not an integer", { leaseMs: 150.5 }, "leaseMs must be an integer of at least 100, got 150.5."],
    ["synchronous OFF", { synchronous: "OFF" as "FULL" }, "synchronous must be FULL or NORMAL, got OFF."],
    ["concurrency 0", { concurrency: 0 }, "concurrency must be an integer >= 1."],
    ["concurrency 1.5", { concurrency: 1.5 }, "concurrency must be an integer >= 1."],
    ["maxValueBytes 0", { maxValueBytes: 0 }, "maxValueBytes must be an integer >= 1."],
    ["maxValueBytes not an integer", { maxValueBytes: 10.5 }, "maxValueBytes must be an integer >= 1."],
    ["an unknown effect validation", { effectValidation: "loud" as "quiet" }, "effectValidation must be one of enabled, quiet, disabled, got loud."],
    ["a window of 0 ms", { window: { ms: 0, tasks: 10 } }, "window needs ms > 0 and an integer tasks >= 1."],
    ["a window of NaN ms", { window: { ms: Number.NaN, tasks: 10 } }, "window needs ms > 0 and an integer tasks >= 1."],
    ["a window of 0 tasks", { window: { ms: 1000, tasks: 0 } }, "window needs ms > 0 and an integer tasks >= 1."],
    ["a window of 2.5 tasks", { window: { ms: 1000, tasks: 2.5 } }, "window needs ms > 0 and an integer tasks >= 1."],
  ];

  test.each(bad)("%s", async (_, options, message) => {
    await expect(Runtime.start(app, options)).rejects.toMatchObject({ code: "INVALID_OPTION", message: expect.stringContaining(message) });
  });

  test("the edges that are allowed start", async () => {
    const rt = await start(app, { leaseMs: 100, synchronous: "NORMAL", concurrency: 1, maxValueBytes: 1, effectValidation: "enabled", window: { ms: 0.5, tasks: 1 } });
    expect(rt.synchronous).toBe("NORMAL");
    expect(rt.inMemory.waiting).toBe(0);
  });

  test("something other than an Application is refused by start and by load", async () => {
    await expect(Runtime.start({ servicers: [] } as unknown as Application)).rejects.toMatchObject({ code: "INVALID_APPLICATION", message: "Runtime.start() needs an Application." });
    const rt = await start(app);
    await expect(rt.load({} as Application)).rejects.toMatchObject({ code: "INVALID_APPLICATION", message: "load() needs an Application." });
  });
});

describe("a task named by the start of its uuid", () => {
  test("one match gives its uuid, with or without dashes and in any case; none is TASK_NOT_FOUND; not hex is INVALID_ARGUMENT", async () => {
    const rt = await start(app);
    const { task } = await Counter.ref("c").spawn({ when: { days: 1 } }).increment(rt.context(), {});
    const uuid = task.taskId.taskUuid;
    expect(await rt.resolveTaskUuid(uuid)).toBe(uuid);
    expect(await rt.resolveTaskUuid(uuid.replaceAll("-", "").slice(0, 12).toUpperCase())).toBe(uuid);
    const other = uuid[0] === "f" ? "0" : "f";
    await expect(rt.resolveTaskUuid(`${other}${uuid.slice(1, 8)}`)).rejects.toMatchObject({ code: "TASK_NOT_FOUND" });
    await expect(rt.resolveTaskUuid("xyz")).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: "'xyz' is not a task uuid or the start of one (hexadecimal digits and dashes).",
    });
  });

  test("several matches are AMBIGUOUS_TASK, naming each (at most ten)", async () => {
    const rt = await start(app);
    const uuids: string[] = [];
    for (let i = 0; i < 12; i++) uuids.push((await Counter.ref(`c${i}`).spawn({ when: { days: 1 } }).increment(rt.context(), {})).task.taskId.taskUuid);
    // Task uuids are time-ordered: the first characters are shared by tasks made together.
    const prefix = uuids[0]!.slice(0, 4);
    const sharing = uuids.filter((u) => u.startsWith(prefix));
    expect(sharing.length).toBeGreaterThan(1);
    const error = (await rt.resolveTaskUuid(prefix).then(
      () => new Error("resolved"),
      (e: unknown) => e,
    )) as Error & { code: string };
    expect(error).toMatchObject({ code: "AMBIGUOUS_TASK" });
    const count = sharing.length > 10 ? "more than 10" : String(sharing.length);
    expect(error.message).toMatch(new RegExp(`^'${prefix}' is the start of ${count} tasks; give more of the uuid: `));
    // The sentence, then one name per task.
    expect(error.message.split("; ")).toHaveLength(1 + Math.min(sharing.length, 10));
    expect(error.message).toContain(`${sharing[0]} Counter('c0').increment SCHEDULED`);
  });
});
