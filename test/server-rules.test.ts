// Decisions of the server and the store kept as pure functions: what the task routes answer,
// how deep a body may nest, how far ahead a task may be due, what may be stored.
import { describe, expect, test } from "vitest";
import { dueTime, MAX_DELAY_MS, normalUuidPrefix, shortestUniquePrefix } from "../src/api/task-id.js";
import { DEFAULT_MAX_VALUE_BYTES, MAX_DEPTH, toStoredJson } from "../src/runtime/json.js";
import type { TaskInfo } from "../src/runtime/runtime.js";
import { MendError } from "../src/api/errors.js";
import { errorAnswer, safeJson } from "../src/server/answer.js";
import { jsonDepth } from "../src/server/read-json.js";
import { cancelRefusal, cutLargeValues, isWaitingForCode, retryRefusal } from "../src/server/task-answers.js";
import { isDiskFull } from "../src/store/open.js";

describe("cancel and retry say exactly why they do nothing", () => {
  const task = (status: TaskInfo["status"], dueAt: number | null = 1, lastError: string | null = null) => ({ status, dueAt, lastError });
  const missing = "The method Account.gone does not exist in code version v3; the task waits for a version that has it.";

  test("cancel", () => {
    expect(cancelRefusal(task("CANCELLED"))).toEqual({ status: 409, code: "ALREADY_CANCELLED", message: "Task is already cancelled." });
    expect(cancelRefusal(task("COMPLETED"))).toEqual({ status: 409, code: "ALREADY_FINISHED", message: "Task has already finished (COMPLETED); nothing to cancel." });
    expect(cancelRefusal(task("ABORTED"))?.message).toBe("Task has already finished (ABORTED); nothing to cancel.");
    for (const status of ["SCHEDULED", "STARTED", "SCHEDULED_RETRY", "SCHEDULED_ITERATION"] as const) expect(cancelRefusal(task(status))).toBeUndefined();
  });

  test("retry", () => {
    for (const status of ["COMPLETED", "ABORTED", "CANCELLED"] as const)
      expect(retryRefusal(task(status))).toEqual({ status: 409, code: "FINISHED", message: `Task has finished (${status}); nothing to retry.` });
    expect(retryRefusal(task("STARTED"))).toEqual({ status: 409, code: "RUNNING", message: "Task is running; nothing to retry." });
    expect(retryRefusal(task("SCHEDULED_RETRY", null, missing))).toEqual({
      status: 409,
      code: "WAITING_FOR_CODE",
      message: "The method Account.gone does not exist in code version v3: the task will keep waiting until a version that has it is loaded; nothing to retry.",
    });
    // A failing task, and a task with no due time for another reason, may be retried.
    expect(retryRefusal(task("SCHEDULED_RETRY", 5, "Error: boom"))).toBeUndefined();
    expect(retryRefusal(task("SCHEDULED_RETRY", null, "stuck: ran for more than 3 s without yielding"))).toBeUndefined();
    expect(retryRefusal(task("SCHEDULED"))).toBeUndefined();
    expect(isWaitingForCode(task("SCHEDULED_RETRY", null, "The state type Gone does not exist in code version v1; the task waits for a version that has it."))).toBe(true);
  });
});

describe("show cuts large values", () => {
  const info = { taskId: { stateType: "A", stateId: "a", taskUuid: "u" }, request: { n: 1 }, response: { data: "x".repeat(100_000) }, error: undefined } as unknown as TaskInfo;

  test("a value over the limit leaves the task and is described by its size and start", () => {
    const { task, cut } = cutLargeValues(info);
    expect(task).not.toHaveProperty("response");
    expect(task.request).toEqual({ n: 1 });
    expect(cut).toEqual({ response: { bytes: 100_011, preview: `{"data":"${"x".repeat(191)}` } });
    expect(cutLargeValues(info, 1_000_000)).toEqual({ task: info });
  });
});

describe("bodies", () => {
  test("depth counts brackets outside strings only", () => {
    expect(jsonDepth("{}")).toBe(1);
    expect(jsonDepth('{"a":[[1],{"b":2}]}')).toBe(3);
    expect(jsonDepth('{"a":"[[[[\\"[[["}')).toBe(1);
    expect(jsonDepth("[".repeat(MAX_DEPTH + 1))).toBe(MAX_DEPTH + 1);
    expect(jsonDepth("42")).toBe(0);
  });
});

describe("due times", () => {
  test("at most 100 years ahead", () => {
    expect(dueTime({ days: 365 * 99 }, 0)).toBe(365 * 99 * 8.64e7);
    for (const when of [{ ms: 1e308 }, { days: 1e308 }, { days: 365.25 * 100 + 1 }, { hours: 1e12 }])
      expect(() => dueTime(when, 0)).toThrow("`when` is more than 100 years from now.");
    expect(() => dueTime(new Date(8.64e15), 0)).toThrow("`when` is +275760-09-13T00:00:00.000Z, more than 100 years from now.");
    expect(dueTime(new Date(MAX_DELAY_MS), 0)).toBe(MAX_DELAY_MS);
    // A date in the past is due now, as before.
    expect(dueTime(new Date(5), 1000)).toBe(5);
  });
});

describe("task uuids", () => {
  test("the start of a uuid as a person may type it, in the stored form", () => {
    expect(normalUuidPrefix("01A2230A")).toBe("01a2230a");
    expect(normalUuidPrefix("01a2230a6020")).toBe("01a2230a-6020");
    expect(normalUuidPrefix("01a2230a-6020-7000-8000-000000000000")).toBe("01a2230a-6020-7000-8000-000000000000");
    expect(normalUuidPrefix("01a2230a60207000800000000000000000")).toBeUndefined();
    expect(normalUuidPrefix("01a-2230a")).toBeUndefined();
    expect(normalUuidPrefix("g")).toBeUndefined();
    expect(normalUuidPrefix("")).toBeUndefined();
  });

  test("the shortest start that tells a uuid from its neighbours, never less than 8 nor ending on a dash", () => {
    const u = "01a2230a-6020-7abc-8000-000000000001";
    expect(shortestUniquePrefix(u, [])).toBe("01a2230a");
    expect(shortestUniquePrefix(u, ["01a2230a-6020-7abc-8000-000000000000", "01a2230b-0000-7000-8000-000000000000"])).toBe(u);
    expect(shortestUniquePrefix(u, ["01a2230a-6019-7000-8000-000000000000"])).toBe("01a2230a-602");
    expect(shortestUniquePrefix(u, ["01a2230a-7000-7000-8000-000000000000"])).toBe("01a2230a-6");
  });
});

describe("stored values", () => {
  test("NaN, Infinity and invalid Dates are refused, not stored as null", () => {
    expect(() => toStoredJson({ a: Number.NaN }, "X")).toThrow("X cannot be stored: the value.a is NaN, which JSON cannot hold.");
    expect(() => toStoredJson([-Infinity], "X")).toThrow("the value[0] is -Infinity, which JSON cannot hold.");
    expect(() => toStoredJson({ d: new Date(Number.NaN) }, "X")).toThrow("the value.d is an invalid Date");
    expect(toStoredJson({ d: new Date(0), n: 1.5 }, "X")).toBe('{"d":"1970-01-01T00:00:00.000Z","n":1.5}');
  });

  test("too deep, and too large, each with a clear error", () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_DEPTH + 1; i++) deep = [deep];
    expect(() => toStoredJson(deep, "X")).toThrow(`is nested more than ${MAX_DEPTH} levels deep`);
    expect(() => toStoredJson("x".repeat(2000), "The response of A.b", 1000)).toThrow(
      "The response of A.b is 2.0 kB as JSON, over the limit of 1.0 kB (maxValueBytes).",
    );
    // Bytes, not characters: 400 three-byte characters are 1.2 kB.
    expect(() => toStoredJson("€".repeat(400), "X", 1000)).toThrow("X is 1.2 kB as JSON");
    expect(toStoredJson("x".repeat(900), "X", 1000)).toHaveLength(902);
    expect(DEFAULT_MAX_VALUE_BYTES).toBe(16 * 1024 * 1024);
  });
});

test("a full disk is recognised in an error or its cause", () => {
  expect(isDiskFull(Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }))).toBe(true);
  expect(isDiskFull(new Error("wrapped", { cause: Object.assign(new Error("no space"), { code: "ENOSPC" }) }))).toBe(true);
  expect(isDiskFull(Object.assign(new Error("busy"), { code: "SQLITE_BUSY" }))).toBe(false);
  expect(isDiskFull(undefined)).toBe(false);
});

describe("answers", () => {
  test("formatting an answer cannot throw, even for a value mutated into a cycle after it was checked", () => {
    const response: Record<string, unknown> = { a: 1, big: 2n };
    response.self = response;
    expect(JSON.parse(safeJson({ outcome: { status: "COMPLETED", response } }))).toEqual({ outcome: { status: "COMPLETED", response: { a: 1, big: "2", self: "[Circular]" } } });
  });

  test("which status an error leaves the server with", () => {
    expect(errorAnswer(Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" }))).toEqual({
      status: 507,
      error: { code: "DISK_FULL", message: "The disk is full: nothing was written. Free some space and try again." },
    });
    expect(errorAnswer(new MendError("AMBIGUOUS_TASK", "x")).status).toBe(400);
    expect(errorAnswer(new MendError("SOMETHING", "x")).status).toBe(500);
    expect(errorAnswer("thrown")).toEqual({ status: 500, error: { code: "INTERNAL", message: "thrown" } });
  });
});
