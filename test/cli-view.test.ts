// How the task CLI reads ids and prints tasks: pure functions, checked directly.
import { describe, expect, test } from "vitest";
import { applicationUrlExportLine } from "../src/cli/application-url.js";
import { fitTable, isoDate, printable } from "../src/cli/format.js";
import { parseTaskRef } from "../src/cli/task-ref.js";
import { renderTask, renderTaskList, stillFailing, whenOf, type SummaryJson, type TaskJson } from "../src/cli/task-view.js";

const now = 1_800_000_000_000;

function summary(over: Partial<SummaryJson> & { stateId?: string }): SummaryJson {
  const { stateId = "carol", ...rest } = over;
  return {
    id: "",
    taskId: { stateType: "Account", stateId, taskUuid: "01a2230a-6020-7000-8000-000000000000" },
    shortUuid: "01a2230a-602",
    method: "statement",
    status: "SCHEDULED",
    dueAt: now + 41_000,
    createdAt: now - 60_000,
    updatedAt: now - 3_000,
    attempts: 0,
    lastError: null,
    iteration: 0,
    request: { bytes: 2, preview: "{}" },
    cursor: 1,
    ...rest,
  };
}

describe("WHEN, and which tasks show their error", () => {
  test("says when a task is due, since when it runs, or when it ran", () => {
    expect(whenOf(summary({}), now)).toBe("due in 41 s");
    expect(whenOf(summary({ dueAt: now + 300 }), now)).toBe("due now");
    expect(whenOf(summary({ dueAt: now - 5_000 }), now)).toBe("due 5 s ago");
    expect(whenOf(summary({ status: "SCHEDULED_RETRY", dueAt: null }), now)).toBe("waiting");
    expect(whenOf(summary({ status: "STARTED", dueAt: null, updatedAt: now - 2_500 }), now)).toBe("running 2 s");
    expect(whenOf(summary({ status: "COMPLETED", dueAt: null }), now)).toBe("ran 3 s ago");
    expect(whenOf(summary({ status: "ABORTED", dueAt: null, updatedAt: now - 200 }), now)).toBe("ran just now");
    expect(whenOf(summary({ status: "CANCELLED", dueAt: null, updatedAt: now - 120_000 }), now)).toBe("ended 2 min ago");
  });

  test("only a task still failing shows its last error", () => {
    expect(stillFailing({ status: "SCHEDULED_RETRY", lastError: "Error: x" })).toBe(true);
    expect(stillFailing({ status: "STARTED", lastError: "Error: x" })).toBe(true);
    expect(stillFailing({ status: "COMPLETED", lastError: "Error: x" })).toBe(false);
    expect(stillFailing({ status: "CANCELLED", lastError: "Error: x" })).toBe(false);
    expect(stillFailing({ status: "SCHEDULED_RETRY", lastError: null })).toBe(false);
  });
});

describe("the task table", () => {
  const tasks = [
    summary({ status: "SCHEDULED_RETRY", attempts: 1, lastError: "Error: Unknown currency 'usd' in a message long enough to be cut at the end of the line" }),
    summary({ shortUuid: "01a2230a-603d", stateId: "bob", method: "welcomeEmail", status: "COMPLETED", dueAt: null, attempts: 2, lastError: "Error: an old failure" }),
    summary({ shortUuid: "01a2230a-6039", stateId: "a".repeat(60), method: "welcomeEmail", dueAt: now + 600_000 }),
  ];

  test("fits 80 columns: state and method cut first, the error on a line of its own when little is left", () => {
    const out = renderTaskList(tasks, now, 80);
    const lines = out.split("\n");
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    expect(lines[0]).toMatch(/^TASK\s+STATE\s+METHOD\s+STATUS\s+WHEN\s+TRIES$/);
    // The 60-character state id makes STATE the widest column: it is cut, to 12 here.
    expect(lines[1]).toMatch(/^01a2230a-602 {3}Account\('ca… {2}statement {5}SCHEDULED_RETRY {2}due in 41 s {4}1$/);
    expect(lines[2]).toMatch(/^ {2}↳ Error: Unknown currency 'usd' in a message long enough to be cut at the end…$/);
    expect(lines[3]).toMatch(/^01a2230a-603d {2}Account\('bo… {2}welcomeEmail {2}COMPLETED {8}ran 3 s ago {4}2$/);
    expect(lines[4]).toMatch(/^01a2230a-6039 {2}Account\('aa… {2}welcomeEmail {2}SCHEDULED {8}due in 10 min {2}0$/);
    expect(out).not.toContain("an old failure");
  });

  test("on a wide terminal the error takes the rest of its row", () => {
    const lines = renderTaskList(tasks.slice(0, 2), now, 200).split("\n");
    expect(lines[0]).toMatch(/^TASK\s+STATE\s+METHOD\s+STATUS\s+WHEN\s+TRIES\s+LAST ERROR$/);
    expect(lines[1]).toMatch(/\s1\s+Error: Unknown currency 'usd' in a message long enough to be cut at the end of the line$/);
    expect(lines).toHaveLength(3);
  });

  test("a state id or an error cannot move the cursor, recolour or reorder what is printed", () => {
    const out = renderTaskList([summary({ stateId: "a\x1b[2J\nb\u202ec", status: "SCHEDULED_RETRY", lastError: "bad\x07\r" })], now, 200);
    expect(out).toContain("Account('a\\x1b[2J\\nb\\u202ec')");
    expect(out).toContain("bad\\x07\\r");
    expect(out).not.toMatch(/[\x00-\x09\x0b-\x1f\u202e]/);
    expect(printable("tab\there é 🙂")).toBe("tab\\there é 🙂");
  });

  test("no tasks", () => {
    expect(renderTaskList([], now, 80)).toBe("No tasks.");
  });

  test("a generic table cuts its flexible columns, widest first", () => {
    const out = fitTable([{ header: "A" }, { header: "B", min: 3 }, { header: "C", min: 3 }, { header: "LAST" }], [["x", "bbbbbbbb", "cccccc", "a long last cell"]], 24);
    expect(out.split("\n")).toEqual(["A  B    C    LAST", "x  bb…  cc…  a long las…"]);
    expect(fitTable([{ header: "A" }, { header: "B", min: 3 }, { header: "LAST" }], [["x", "bbbbbbbb", "last"]], 20).split("\n")).toEqual(["A  B         LAST", "x  bbbbbbbb  last"]);
  });
});

describe("show", () => {
  const task: TaskJson = {
    id: "Account/carol/01a2230a-6020-7000-8000-000000000000",
    taskId: { stateType: "Account", stateId: "carol", taskUuid: "01a2230a-6020-7000-8000-000000000000" },
    method: "statement",
    status: "COMPLETED",
    dueAt: 8.64e15 + 1,
    createdAt: now,
    updatedAt: now,
    attempts: 1,
    lastError: null,
    iteration: 0,
    request: {},
    response: { text: "x".repeat(2000) },
    cursor: 0,
  };

  test("a value too long for a line is cut with its size; one the server cut says how large it is", () => {
    const out = renderTask(task, [], now);
    expect(out).toMatch(/^Response {2}\{"text":"x+… \(2\.0 kB in all; --json --full prints it\)$/m);
    const cut = renderTask({ ...task, response: undefined }, [], now, { response: { bytes: 10_500_000, preview: '{"data":"yyy' } });
    expect(cut).toContain('Response  {"data":"yyy… (10.5 MB in all; --full prints it)');
    expect(renderTask(task, [], now, {}, true)).toContain(`Response  {"text":"${"x".repeat(2000)}"}`);
  });

  test("a due time past what a Date holds prints as a number instead of throwing", () => {
    expect(renderTask(task, [], now)).toContain(`Due       ${8.64e15 + 1} (`);
    expect(isoDate(0)).toBe("1970-01-01T00:00:00.000Z");
  });
});

describe("task ids as people type them", () => {
  test("a uuid, the start of one (any case, with or without dashes), or TYPE/STATE_ID/UUID", () => {
    expect(parseTaskRef("01A2230A")).toEqual({ uuid: "01a2230a" });
    expect(parseTaskRef("01a2230a6020")).toEqual({ uuid: "01a2230a-6020" });
    expect(parseTaskRef("01a2230a-602")).toEqual({ uuid: "01a2230a-602" });
    expect(parseTaskRef("01a2230a-")).toEqual({ uuid: "01a2230a" });
    expect(parseTaskRef("Account/a%2Fb/01a2230a")).toEqual({ uuid: "01a2230a", stateType: "Account", stateId: "a/b" });
  });

  test("anything else says which forms are accepted", () => {
    for (const bad of ["", "xyz", "01a2-230a", "Account/x", "/x/01a2", `${"0".repeat(33)}`])
      expect(() => parseTaskRef(bad)).toThrow(`'${bad}' is not a task id: give a task uuid, the start of one (as mend task list shows it), or TYPE/STATE_ID/UUID.`);
    expect(() => parseTaskRef("Account/%E0%A4%A/01a2")).toThrow("its state id is not URI-encoded");
  });
});

test("the line that points mend task at a server", () => {
  expect(applicationUrlExportLine("http://127.0.0.1:41234")).toBe("export MEND_APPLICATION_URL=http://127.0.0.1:41234");
  expect(applicationUrlExportLine("http://[::1]:41234")).toBe("export MEND_APPLICATION_URL='http://[::1]:41234'");
});
