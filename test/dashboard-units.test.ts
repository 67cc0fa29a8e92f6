// The dashboard's pure parts (issue 16): the event ring, the rerun rule, where a step sits,
// the token rule, editor links, the page's parsers (events, stacks, places) and formats.
import { describe, expect, test } from "vitest";
import { EventRing, formatEventId, parseEventId } from "../src/server/event-ring.js";
import { attemptOfStep, isRefusal, placeSteps, planRerun, type StepRecord } from "../src/runtime/steps.js";
import { taskRefusal } from "../src/runtime/inspector.js";
import { editorUrlProblem, tokenRefusal } from "../src/server/dashboard.js";
import { needsAdminSecret } from "../src/server/guard.js";
import { renderHistory, renderSteps, rerunDone } from "../src/cli/task-steps.js";
import { SseParser } from "../ui/sse.js";
import { editorLink, parseStack } from "../ui/stack.js";
import { formatRoute, parseRoute, type Route } from "../ui/route.js";
import { curlFor, relative, shellQuote } from "../ui/format.js";
import { groupSteps } from "../ui/views/steps-group.js";

describe("the event ring", () => {
  test("numbers events from 1 and gives back what came after a number it still holds", () => {
    const ring = new EventRing<string>(3);
    expect(ring.since(0)).toEqual([]);
    expect(["a", "b"].map((x) => ring.push(x))).toEqual([1, 2]);
    expect(ring.since(0)).toEqual([{ n: 1, item: "a" }, { n: 2, item: "b" }]);
    expect(ring.since(1)).toEqual([{ n: 2, item: "b" }]);
    expect(ring.since(2)).toEqual([]);
  });

  test("once it has dropped an event after the one seen, it cannot tell: undefined", () => {
    const ring = new EventRing<string>(3);
    for (const x of ["a", "b", "c", "d", "e"]) ring.push(x);
    expect(ring.first).toBe(3);
    // Seen 2: 3, 4, 5 missed, all held.
    expect(ring.since(2)?.map((e) => e.item)).toEqual(["c", "d", "e"]);
    // Seen 1: 2 was dropped.
    expect(ring.since(1)).toBeUndefined();
    expect(ring.since(0)).toBeUndefined();
    // A number it never gave out, or not a number.
    expect(ring.since(6)).toBeUndefined();
    expect(ring.since(-1)).toBeUndefined();
    expect(ring.since(2.5)).toBeUndefined();
  });

  test("ids name their stream; an id of another stream, or not an id, is not resumed", () => {
    expect(formatEventId("ab12cd34", 7)).toBe("ab12cd34-7");
    expect(parseEventId("ab12cd34-7", "ab12cd34")).toBe(7);
    expect(parseEventId("ab12cd34-0", "ab12cd34")).toBe(0);
    expect(parseEventId("ffffffff-7", "ab12cd34")).toBeUndefined();
    expect(parseEventId("ab12cd34-7x", "ab12cd34")).toBeUndefined();
    expect(parseEventId("ab12cd34--1", "ab12cd34")).toBeUndefined();
    expect(parseEventId(undefined, "ab12cd34")).toBeUndefined();
    expect(() => new EventRing(0)).toThrow(RangeError);
  });
});

const workflow: StepRecord[] = [
  { alias: "charge", kind: "atMostOnce", status: "completed" },
  { alias: "charge/Shop('a').pay#1", kind: "call", status: "completed" },
  { alias: "first", kind: "call", status: "completed" },
  { alias: "email/Mail('a').send#1", kind: "call", status: "completed" },
  { alias: "email", kind: "atLeastOnce", status: "completed" },
  { alias: "child", kind: "spawn", status: "completed" },
  { alias: "last", kind: "call", status: "failed" },
];

describe("rerun from a step", () => {
  test("forgets the step, the steps recorded after it, and those recorded inside it (a helper records its own after them)", () => {
    expect(planRerun(workflow, "email")).toEqual({ forget: ["email/Mail('a').send#1", "email", "child", "last"], spawns: ["child"] });
    expect(planRerun(workflow, "first")).toEqual({ forget: ["first", "email/Mail('a').send#1", "email", "child", "last"], spawns: ["child"] });
    expect(planRerun(workflow, "last")).toEqual({ forget: ["last"], spawns: [] });
  });

  test("refuses an atMostOnce step that started or ran, a step recorded before it, and a step inside it", () => {
    for (const from of ["charge", "charge/Shop('a').pay#1"]) {
      const plan = planRerun(workflow, from);
      expect(isRefusal(plan) && plan.code).toBe("AT_MOST_ONCE");
    }
    const started: StepRecord[] = [{ alias: "a", kind: "call", status: "completed" }, { alias: "pay", kind: "atMostOnce", status: "started" }];
    expect(planRerun(started, "a")).toEqual({
      code: "AT_MOST_ONCE",
      message: 'The step "pay", recorded after it, is atMostOnce and started on an earlier attempt: running it again could repeat its effect, which atMostOnce promises never to do. Rerun from a step after it.',
    });
    // One that failed with a retryable error did nothing: it may run again.
    expect(planRerun([{ alias: "pay", kind: "atMostOnce", status: "failed" }], "pay")).toEqual({ forget: ["pay"], spawns: [] });
  });

  test("an alias the task has not recorded is refused, naming the ones it has", () => {
    expect(planRerun(workflow, "nope")).toMatchObject({ code: "UNKNOWN_STEP", message: expect.stringMatching(/^The task has no step "nope"; its steps are "charge", /) });
    expect(planRerun([], "x")).toEqual({ code: "UNKNOWN_STEP", message: 'The task has no recorded steps; nothing to rerun from "x".' });
  });

  const loop: StepRecord[] = [
    { alias: "poll[0]/tick", kind: "call", status: "completed" },
    { alias: "poll", kind: "loop", status: "started", iteration: 3 },
    { alias: "poll[1]/tick", kind: "call", status: "completed" },
    { alias: "poll[2]/tick", kind: "call", status: "completed" },
    { alias: "poll[3]/tick", kind: "call", status: "completed" },
  ];

  test("a step of an earlier loop iteration sets the loop back to it; the loop itself starts the loop over", () => {
    expect(planRerun(loop, "poll[1]/tick")).toEqual({ forget: ["poll[1]/tick", "poll[2]/tick", "poll[3]/tick"], spawns: [], loop: { alias: "poll", iteration: 1 } });
    // The iteration running now needs no setting back.
    expect(planRerun(loop, "poll[3]/tick")).toEqual({ forget: ["poll[3]/tick"], spawns: [] });
    // Iteration 0's steps come before the loop's record: forgetting from there forgets the record, so it starts at 0.
    expect(planRerun(loop, "poll[0]/tick")).toEqual({ forget: loop.map((s) => s.alias), spawns: [] });
    expect(planRerun(loop, "poll")).toEqual({ forget: loop.map((s) => s.alias), spawns: [] });
  });

  test("a task that has finished or is running cannot be rerun, whatever the step", () => {
    expect(taskRefusal("COMPLETED")?.code).toBe("FINISHED");
    expect(taskRefusal("CANCELLED")?.message).toMatch(/^Task has finished \(CANCELLED\); a finished task cannot be rerun/);
    expect(taskRefusal("STARTED")?.code).toBe("RUNNING");
    for (const status of ["SCHEDULED", "SCHEDULED_RETRY", "SCHEDULED_ITERATION"] as const) expect(taskRefusal(status)).toBeUndefined();
  });

  test("each step's place: its loop iteration, the helper it ran in; and the attempt that recorded it", () => {
    expect(placeSteps([...workflow, ...loop])).toEqual([
      {}, { within: "charge" }, {}, { within: "email" }, {}, {}, {},
      { loop: { alias: "poll", iteration: 0 } }, {}, { loop: { alias: "poll", iteration: 1 } }, { loop: { alias: "poll", iteration: 2 } }, { loop: { alias: "poll", iteration: 3 } },
    ]);
    const attempts = [{ number: 1, startedAt: 100 }, { number: 2, startedAt: 200 }];
    expect([50, 100, 150, 200, 999].map((t) => attemptOfStep(t, attempts))).toEqual([null, 1, 1, 2, 2]);
    // Attempt 2 ends in the millisecond attempt 3 starts: the loop counter its end recorded is
    // attempt 2's, a step recorded then is attempt 3's.
    const tied = [{ number: 1, startedAt: 100, endedAt: 150 }, { number: 2, startedAt: 160, endedAt: 200 }, { number: 3, startedAt: 200, endedAt: null }];
    expect([100, 155, 160, 200, 300].map((t) => attemptOfStep(t, tied, "loop"))).toEqual([1, 1, 2, 2, 3]);
    expect([100, 155, 160, 200, 300].map((t) => attemptOfStep(t, tied, "call"))).toEqual([1, 1, 2, 3, 3]);
  });

  test("the page groups consecutive steps of one iteration", () => {
    const steps = placeSteps(loop).map((p, i) => ({ ...loop[i]!, step: "", recordedAt: 0, attempt: 1, ...p }));
    expect(groupSteps(steps).map((g) => [g.loop?.iteration ?? null, g.steps.map((s) => s.alias)])).toEqual([
      [0, ["poll[0]/tick"]], [null, ["poll"]], [1, ["poll[1]/tick"]], [2, ["poll[2]/tick"]], [3, ["poll[3]/tick"]],
    ]);
  });
});

describe("who may use the dashboard", () => {
  test("a browser's action needs the token; a client that sends neither Origin nor Sec-Fetch-Site is no browser", () => {
    const token = "t0k3n";
    expect(tokenRefusal({}, token)).toBeUndefined();
    expect(tokenRefusal({ origin: "http://127.0.0.1:9991" }, token)?.code).toBe("MISSING_TOKEN");
    expect(tokenRefusal({ "sec-fetch-site": "same-origin" }, token)?.status).toBe(403);
    expect(tokenRefusal({ origin: "http://127.0.0.1:9991", "x-mend-token": "t0k3" }, token)?.code).toBe("MISSING_TOKEN");
    expect(tokenRefusal({ origin: "http://127.0.0.1:9991", "x-mend-token": token }, token)).toBeUndefined();
  });

  test("the page's files need no secret; its session, stream and reads do, as the task routes", () => {
    const beyond = { loopback: false, adminSecret: "s" };
    expect(needsAdminSecret("page", beyond)).toBe(false);
    for (const route of ["dashboard", "events", "inspect", "rerun"] as const) {
      expect(needsAdminSecret(route, beyond)).toBe(true);
      expect(needsAdminSecret(route, { loopback: true, adminSecret: "s" })).toBe(true);
      expect(needsAdminSecret(route, { loopback: true })).toBe(false);
    }
  });

  test("an editor URL needs a scheme that is not a script's, and {file}", () => {
    expect(editorUrlProblem("vscode://file/{file}:{line}:{column}")).toBeUndefined();
    expect(editorUrlProblem("idea://open?file={file}&line={line}")).toBeUndefined();
    expect(editorUrlProblem("javascript:alert({file})")).toMatch(/may not be a javascript: URL/);
    expect(editorUrlProblem("Data:text/html,{file}")).toMatch(/data:/);
    expect(editorUrlProblem("{file}:{line}")).toMatch(/must start with a scheme/);
    expect(editorUrlProblem("vscode://file/")).toMatch(/must contain \{file\}/);
  });
});

describe("the page's parsers", () => {
  test("server-sent events: fields, comments, multi-line data, ids, split anywhere", () => {
    const text = ": keep-alive\n\nretry: 1000\n\nid: s-1\nevent: task:created\ndata: {\"a\":1}\n\nid: s-2\ndata: one\ndata:two\n\r\nevent: empty\n\n";
    for (const size of [1, 3, 7, text.length]) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < text.length; i += size) events.push(...parser.push(text.slice(i, i + size)));
      expect(events).toEqual([
        { id: "s-1", event: "task:created", data: '{"a":1}' },
        { id: "s-2", event: "message", data: "one\ntwo" },
      ]);
    }
  });

  test("a mapped stack: frames of the user's files link to the editor; node_modules and Node's own do not", () => {
    const stack = [
      "Error: Unknown currency 'usd'",
      "    at formatBalance (/home/me/bank/src/format.ts:5:22)",
      "    at async Object.statement (/home/me/bank/src/account.ts:33:53)",
      "    at /home/me/bank/src/main.ts:2:1",
      "    at run (/home/me/bank/node_modules/lib/index.js:1:1)",
      "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
      "    at file:///home/me/my%20app/src/x.ts:3:4",
    ].join("\n");
    const { head, frames } = parseStack(stack);
    expect(head).toBe("Error: Unknown currency 'usd'");
    expect(frames.map((f) => (f.file ? `${f.file}:${f.line}:${f.column}` : null))).toEqual([
      "/home/me/bank/src/format.ts:5:22", "/home/me/bank/src/account.ts:33:53", "/home/me/bank/src/main.ts:2:1", null, null, "/home/me/my app/src/x.ts:3:4",
    ]);
    expect(editorLink("vscode://file/{file}:{line}:{column}", { file: "/home/me/my app/a#b.ts", line: 5, column: 22 })).toBe("vscode://file/home/me/my%20app/a%23b.ts:5:22");
    expect(editorLink("idea://open?file={file}&line={line}", { file: "/a/b.ts", line: 3, column: 1 })).toBe("idea://open?file=/a/b.ts&line=3");
  });

  test("places in the hash, both ways", () => {
    const routes: Route[] = [
      { page: "tasks", query: { status: "SCHEDULED_RETRY", q: "usd" } },
      { page: "task", uuid: "01a22314-8" },
      { page: "types" },
      { page: "instances", type: "Account", query: { q: "a/b" } },
      { page: "instance", type: "Account", id: "a/b c" },
      { page: "dev" },
    ];
    for (const route of routes) expect(parseRoute(formatRoute(route))).toEqual(route);
    expect(parseRoute("")).toEqual({ page: "tasks", query: {} });
    expect(parseRoute("#/nowhere")).toEqual({ page: "tasks", query: {} });
  });

  test("times, shell words and the curl of a task", () => {
    expect(relative(0, 3_000)).toBe("3 s ago");
    expect(relative(125_000, 0)).toBe("in 2 min");
    expect(relative(10, 500)).toBe("just now");
    expect(shellQuote("plain/path:1")).toBe("plain/path:1");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(curlFor("http://127.0.0.1:9991", { stateType: "Account", stateId: "o'neil", method: "statement", request: {} }, false)).toBe(
      `curl -X POST http://127.0.0.1:9991/v1/tasks -H 'content-type: application/json' -d '{"stateType":"Account","stateId":"o'\\''neil","method":"statement","request":{}}'`,
    );
    expect(curlFor("http://h", { stateType: "A", stateId: "a", method: "m", request: 1 }, true)).toContain(`-H "authorization: Bearer $MEND_ADMIN_CREDENTIAL"`);
  });
});

describe("what the CLI prints", () => {
  test("steps in recording order, the history, and a rerun", () => {
    expect(renderSteps([{ alias: "charge", kind: "atMostOnce", step: "atMostOnce()", status: "started", attempt: 1 }, { alias: "first", kind: "call", step: "", status: "completed", attempt: null }])).toBe(
      ["Steps (2), in the order they were recorded:", "  charge  atMostOnce   started, never ended  attempt 1", "  first   call         completed"].join("\n"),
    );
    expect(renderHistory([{ at: 0, action: "rerun", by: "dashboard", detail: { fromStep: "a\x1b[31m", forgotten: ["a"] } }])).toBe(
      'History:\n  1970-01-01T00:00:00.000Z  rerun from step "a\\x1b[31m" by the dev page; forgot a',
    );
    expect(rerunDone("b", { forgotten: ["b", "c"], spawns: ["c"], loop: { alias: "poll", iteration: 1 } })).toBe(
      'Task will run again from step "b": forgot 2 steps (b, c).\nThe loop "poll" goes back to iteration 1.\nThe tasks spawned by forgotten steps go on; the next attempt spawns new ones.',
    );
  });
});
