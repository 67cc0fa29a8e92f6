// The watcher's decisions, as pure functions and small classes: hangs, crashes, parking,
// which task lines serve prints, holder files.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { attemptJson, limit, shortUuid, stuckReason, type AttemptReport } from "../src/cli/log-lines.js";
import { TaskLog } from "../src/cli/task-log.js";
import { Builder } from "../dev/builder.js";
import { Heartbeat } from "../dev/heartbeat.js";
import { holdStateDirectory, readHolder } from "../dev/lock.js";
import { diedByItself, Parked, RunningAttempts, Suspects, verdict } from "../dev/running.js";
import { VersionNumbers } from "../dev/versions.js";
import { tempDir } from "./helpers/temp.js";

describe("heartbeat", () => {
  test("a hang is measured from the oldest unanswered ping, not from the last pong", () => {
    const h = new Heartbeat();
    h.ping(0);
    h.pong(1);
    expect(h.stalledFor(1000)).toBe(0); // nothing waits, however long since the last pong
    h.ping(1000);
    h.ping(1250);
    expect(h.stalledFor(3000)).toBe(2000);
    h.pong(3); // answers it and every earlier one
    expect(h.stalledFor(3500)).toBe(0);
  });
});

describe("crashes and parking", () => {
  test("a task running at two deaths in a row is parked; one that ended in between is not", () => {
    const s = new Suspects();
    expect(s.died(["A", "B"])).toEqual([]);
    s.cleared("B"); // B's attempt ended after the restart: it did not take the runtime down
    expect(s.died(["A", "B", "C"])).toEqual(["A"]);
    expect(s.died(["C"])).toEqual(["C"]);
    expect(s.died(["B"])).toEqual([]); // not in a row: B was not running at the death before
  });

  test("only deaths that a task can cause count", () => {
    expect(diedByItself({ stuck: false, planned: false })).toBe(true); // exited with a code
    expect(diedByItself({ stuck: false, planned: false, signal: "SIGABRT" })).toBe(true); // out of memory
    expect(diedByItself({ stuck: false, planned: false, signal: "SIGKILL" })).toBe(false);
    expect(diedByItself({ stuck: false, planned: false, signal: "SIGTERM" })).toBe(false);
    expect(diedByItself({ stuck: true, planned: false, signal: "SIGKILL" })).toBe(false); // a hang parks at once
    expect(diedByItself({ stuck: false, planned: true, signal: "SIGKILL" })).toBe(false);
  });

  test("parked tasks stay parked across restarts on their version, not on a newer one", () => {
    const p = new Parked();
    p.park("T/a/u1", "v2", "stuck");
    expect(p.forStart("v2")).toEqual([{ taskUuid: "u1", reason: "stuck" }]);
    expect(p.forStart("v3")).toEqual([]);
    p.loaded("v2"); // a restart loads the same version again
    expect(p.forStart("v2")).toHaveLength(1);
    p.resumed("T/a/u1"); // a retry ran it
    expect(p.forStart("v2")).toEqual([]);
    p.park("T/a/u1", "v2", "stuck");
    p.loaded("v3");
    expect(p.forStart("v2")).toEqual([]);
  });

  test("what was running when the runtime stopped, and for how long", () => {
    const r = new RunningAttempts();
    r.start({ taskId: "T/a/u1", method: "m", attempt: 1, version: "v1" }, 100);
    r.start({ taskId: "T/b/u2", method: "n", attempt: 3, version: "v1" }, 400);
    r.end("T/b/u2");
    expect(r.stopped(3500)).toEqual([{ taskId: "T/a/u1", method: "m", version: "v1", ranMs: 3400 }]);
    expect(r.stopped(4000)).toEqual([]);
  });

  test("a hang parks what ran at once; a death of its own, what ran at two in a row; a kill from outside, nothing", () => {
    const t = (id: string) => ({ taskId: `T/a/${id}`, method: "m", version: "v1", ranMs: 10 });
    const s = new Suspects();
    const hang = { stuck: true, planned: false, signal: "SIGKILL", reason: "stopped answering for 3 s" };
    expect(verdict(hang, [t("u1")], s, 3000).park).toEqual([{ task: t("u1"), reason: stuckReason(3000) }]);
    const exit = { stuck: false, planned: false, reason: "exited with code 1" };
    expect(verdict(exit, [t("u1")], s, 3000)).toEqual({ park: [], suspects: [t("u1")] });
    expect(verdict({ ...exit, signal: "SIGKILL", reason: "was killed by SIGKILL" }, [t("u1")], s, 3000)).toEqual({ park: [], suspects: [] });
    expect(verdict(exit, [t("u1"), t("u2")], s, 3000)).toEqual({
      park: [{ task: t("u1"), reason: "stopped the runtime twice in a row (it exited with code 1); parked until new code or a retry" }],
      suspects: [t("u2")],
    });
  });

  test("the parked reason names the limit as set", () => {
    expect(stuckReason(3000)).toBe("stuck: ran for more than 3 s without yielding; parked until new code or a retry");
    expect([limit(2500), limit(250)]).toEqual(["2.5 s", "250 ms"]);
  });
});

describe("version numbers", () => {
  test("go on from the store's last one; a rejected build's number goes to the next", async () => {
    const v = new VersionNumbers();
    const first = v.next();
    v.storeOpened(13);
    v.storeOpened(99); // a restarted runtime reports again: the numbering goes on
    expect(await first).toBe("v14");
    const loaded = v.loaded("v14");
    v.settle("v13"); // another version's load does not settle it
    v.settle("v14");
    await loaded;
    expect(await v.next()).toBe("v15");
    v.rejected("v15");
    expect(await v.next()).toBe("v15");
  });
});

describe("bundles on disk", () => {
  test("a version name that comes back gets a file of its own: removing the old bundle leaves the new one", async () => {
    const dir = tempDir();
    const builder = new Builder(join(dir, "main.ts"), join(dir, "out"));
    try {
      // v6 built, never loaded (the runtime died); after the restart the next build is v6 again.
      writeFileSync(join(dir, "main.ts"), "export default 1;\n");
      const first = await builder.build();
      if (!first.ok) throw new Error(first.message);
      const old = builder.write("v6", first);
      writeFileSync(join(dir, "main.ts"), "export default 2;\n");
      const second = await builder.build();
      if (!second.ok) throw new Error(second.message);
      const again = builder.write("v6", second);
      expect(again).not.toBe(old);
      builder.remove(old);
      expect(existsSync(old)).toBe(false);
      const module = (JSON.parse(readFileSync(again, "utf8")) as { modules: { code: string }[] }).modules[0]!;
      expect(readFileSync(join(dir, "out", module.code), "utf8")).toContain("main_default = 2;");
    } finally {
      await builder.dispose();
    }
  });
});

describe("task lines", () => {
  const failed = (attempt: number, message = "boom"): AttemptReport => ({
    taskId: "A/x/01a2230e-d536-735d-a3d5-cba3ddf6b152", method: "m", attempt, version: "v1", outcome: "FAILED",
    error: { name: "Error", message, stack: `Error: ${message}\n    at f (/app/src/a.ts:1:1)` }, retryInMs: 1000, durationMs: 12.34,
  });
  const completed = (taskId: string, attempt: number): AttemptReport => ({ taskId, method: "m", attempt, version: "v1", outcome: "COMPLETED" });

  test("serve prints failures (the stack once per error), aborts, and the end of a task that failed; not other ends", () => {
    const log = new TaskLog({ format: "text", dev: false, root: "/app" });
    expect(log.attempt(completed("A/y/u", 1))).toBeUndefined();
    const first = log.attempt(failed(1))!;
    expect(first).toContain("failed on v1 (attempt 1): Error: boom — retry in 1.0 s");
    expect(first).not.toContain("save a fix");
    expect(first).toContain("\n    at f (src/a.ts:1:1)");
    expect(log.attempt(failed(2))!).not.toContain("\n"); // the same error: no stack again
    expect(log.attempt(failed(3, "other"))!).toContain("\n"); // a new one: its stack
    expect(log.attempt(completed(failed(1).taskId, 4))).toContain("completed on v1 (attempt 4)");
    expect(log.attempt(completed("A/w/u", 1))).toBeUndefined();
    // After a restart the process no longer knows of the failure: a later attempt is enough.
    expect(log.attempt(completed("A/w/u", 2))).toContain("completed on v1 (attempt 2)");
    expect(log.attempt({ ...completed("A/w/u", 5), outcome: "ITERATED" })).toBeUndefined();
    expect(log.attempt({ ...completed("A/z/u", 1), outcome: "ABORTED", error: { name: "Aborted", message: "no" } })).toContain("aborted on v1: no");
  });

  test("dev prints every attempt, with its hint to save a fix", () => {
    const log = new TaskLog({ format: "text", dev: true });
    expect(log.attempt(completed("A/y/u", 1))).toContain("completed on v1 (attempt 1)");
    expect(log.attempt(failed(1))).toContain("— retry in 1.0 s, or save a fix");
  });

  test("JSON lines carry task id, method, attempt, version, outcome, error and duration", () => {
    const line = JSON.parse(new TaskLog({ format: "json", dev: false }).attempt(failed(1))!) as Record<string, unknown>;
    expect(line).toMatchObject({
      event: "attempt", taskId: "A/x/01a2230e-d536-735d-a3d5-cba3ddf6b152", method: "m", attempt: 1, version: "v1", outcome: "FAILED",
      error: { name: "Error", message: "boom" }, durationMs: 12.3, retryInMs: 1000,
    });
    expect(JSON.parse(attemptJson(completed("A/y/u", 1)))).toMatchObject({ error: null, durationMs: null });
  });

  test("a label shows the part of a UUIDv7 that tells tasks apart", () => {
    expect(shortUuid("01a2230e-d536-735d-a3d5-cba3ddf6b152")).toBe("01a2230e-d536-735d");
  });
});

describe("holder files", () => {
  test("read as held, none, or unreadable with the reason", () => {
    const dir = tempDir();
    const path = join(dir, "h");
    expect(readHolder(path)).toEqual({ state: "none" });
    writeFileSync(path, "");
    expect(readHolder(path)).toEqual({ state: "unreadable", why: "is empty" });
    writeFileSync(path, "{garbled");
    expect(readHolder(path)).toMatchObject({ state: "unreadable", why: "is not a holder file (no process id in it)" });
    writeFileSync(path, JSON.stringify({ pid: 12, command: "x", since: "s" }));
    expect(readHolder(path)).toEqual({ state: "held", holder: { pid: 12, command: "x", since: "s" } });
  });

  test("the watcher holds its state directory: a second holder is refused, a gone one taken over", () => {
    const dir = join(tempDir(), "state");
    mkdirSync(dir);
    writeFileSync(join(dir, "dev-run.holder"), JSON.stringify({ pid: process.ppid, command: "mend dev run", since: "then" }));
    expect(() => holdStateDirectory(dir, "app")).toThrow(`The state of app is in use by mend dev run (process ${process.ppid}, since then); stop it first.`);
    writeFileSync(join(dir, "dev-run.holder"), "");
    const release = holdStateDirectory(dir, "app");
    expect(readHolder(join(dir, "dev-run.holder"))).toMatchObject({ state: "held", holder: { pid: process.pid, command: "mend dev run" } });
    release();
    expect(readHolder(join(dir, "dev-run.holder"))).toEqual({ state: "none" });
  });

  test("a state folder that cannot be written is one clear error", () => {
    const file = join(tempDir(), "a-file");
    writeFileSync(file, "");
    expect(() => holdStateDirectory(join(file, ".mend", "app"), "app")).toThrow(/^Cannot write the state folder .*a-file\/\.mend\/app: ENOTDIR/);
  });
});
