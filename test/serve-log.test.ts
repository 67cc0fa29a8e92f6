// `mend serve` logs, on stderr, each attempt that fails or aborts and the end of a task
// that failed before: as text (the words of `mend dev run`) or as JSON lines.
import { cpSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, test } from "vitest";
import { ExternalContext } from "mend";
import { Job } from "./apps/serve-log/src/main.js";
import { serve } from "./helpers/cli.js";
import { tempDir } from "./helpers/temp.js";

function app(): { dir: string; bug: string } {
  const dir = join(tempDir(), "serve-log");
  cpSync(fileURLToPath(new URL("./apps/serve-log", import.meta.url)), dir, { recursive: true });
  const bug = join(dir, "bug");
  writeFileSync(bug, "");
  return { dir, bug };
}

/** The child's stderr, read line by line. */
function stderrOf(child: Awaited<ReturnType<typeof serve>>["child"]) {
  let text = "";
  const listeners = new Set<() => void>();
  child.stderr!.on("data", (chunk: Buffer) => {
    text += chunk.toString();
    for (const f of listeners) f();
  });
  return {
    get text() {
      return text;
    },
    /** Waits for a line that `match` accepts; returns it. */
    line(match: (line: string) => boolean, timeoutMs = 20_000): Promise<string> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = text.split("\n").find(match);
          if (found !== undefined) done(() => resolve(found));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`no such line within ${timeoutMs} ms; stderr:\n${text}`))), timeoutMs);
        const done = (f: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          f();
        };
        listeners.add(check);
        check();
      });
    },
  };
}

describe("mend serve logs tasks", () => {
  test("as text: a failing attempt with its stack once, its end after the fix, an abort; nothing for a task that just works", async () => {
    const { dir, bug } = app();
    const { url, child } = await serve(dir);
    const log = stderrOf(child);
    const ctx = new ExternalContext({ url });
    const { task: fine } = await Job.ref("fine").spawn().run(ctx, { bug: join(dir, "no-bug") });
    expect(await fine).toEqual({ runs: 1 });

    const { task } = await Job.ref("x").spawn().run(ctx, { bug });
    const label = `Job('x').run [${task.taskId.taskUuid.slice(0, 18)}]`;
    const failed = await log.line((l) => l.includes(`✗ ${label} failed on v1 (attempt 1): Error: still broken: bug exists — retry in 0.1 s`));
    expect(failed).not.toContain("save a fix"); // nothing to save under serve
    // The first failure shows where, mapped to the .ts source.
    await log.line((l) => /^ {4}at .*src\/main\.ts:\d+:\d+/.test(l));
    await log.line((l) => l.includes(`✗ ${label} failed on v1 (attempt 2)`));
    rmSync(bug);
    const completed = await log.line((l) => l.includes(`✓ ${label} completed on v1 (attempt`));
    expect(Number(/attempt (\d+)/.exec(completed)![1])).toBeGreaterThan(2);
    await task;

    const { task: refused } = await Job.ref("y").spawn().refuse(ctx);
    await expect(refused).rejects.toBeInstanceOf(Job.RefuseAborted);
    await log.line((l) => l.includes(`■ Job('y').refuse [${refused.taskId.taskUuid.slice(0, 18)}] aborted on v1`));
    expect(log.text).not.toContain(fine.taskId.taskUuid.slice(0, 18));
    // The stack is printed once per distinct error, not at every retry.
    expect(log.text.match(/src\/main\.ts:\d+:\d+/g)).toHaveLength(1);
  });

  test("as JSON lines with task id, method, attempt, version, outcome, error and duration", async () => {
    const { dir, bug } = app();
    const { url, child } = await serve(dir, ["--log-format", "json"]);
    const log = stderrOf(child);
    const ctx = new ExternalContext({ url });
    const { task } = await Job.ref("x").spawn().run(ctx, { bug, ms: 100 });
    const id = `Job/x/${task.taskId.taskUuid}`;
    type Line = { time: string; event: string; taskId: string; method: string; attempt: number; version: string; outcome: string; error: { name: string; message: string; stack: string } | null; durationMs: number; retryInMs?: number };
    const parsed = (l: string) => (l.startsWith("{") ? (JSON.parse(l) as Line) : undefined);
    const first = parsed(await log.line((l) => parsed(l)?.taskId === id && parsed(l)?.attempt === 1))!;
    expect(first).toMatchObject({ event: "attempt", method: "run", version: "v1", outcome: "FAILED", retryInMs: 50, error: { name: "Error", message: `still broken: ${bug} exists` } });
    expect(first.error!.stack).toMatch(/src\/main\.ts:\d+:\d+/);
    expect(first.durationMs).toBeGreaterThanOrEqual(100);
    expect(Date.parse(first.time)).not.toBeNaN();
    rmSync(bug);
    const last = parsed(await log.line((l) => parsed(l)?.taskId === id && parsed(l)?.outcome === "COMPLETED"))!;
    expect(last).toMatchObject({ event: "attempt", method: "run", version: "v1", error: null });
    expect(last.attempt).toBeGreaterThan(1);
    expect(last.durationMs).toBeGreaterThanOrEqual(100);
    await task;
    // Every line on stderr is one JSON object.
    for (const l of log.text.split("\n").filter(Boolean)) expect(() => JSON.parse(l)).not.toThrow();
  });
});
