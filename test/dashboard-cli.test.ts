// `mend task rerun` and the steps and history `mend task show` prints (issue 16), against a
// real `mend serve` of the steps app, each run of the CLI a real process.
import { cpSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";
import { SseParser, type SseEvent } from "../ui/sse.js";
import { mend, serve } from "./helpers/cli.js";
import { tempDir } from "./helpers/temp.js";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The server's event stream: `until` resolves with the first event after the last match that `match` accepts. */
async function events(url: string) {
  const abort = new AbortController();
  const response = await fetch(`${url}/v1/events`, { signal: abort.signal });
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  const pending: SseEvent[] = [];
  return {
    async until(match: (e: SseEvent & { json: Record<string, unknown> }) => boolean): Promise<void> {
      for (;;) {
        while (pending.length > 0) {
          const e = pending.shift()!;
          if (match({ ...e, json: JSON.parse(e.data) as Record<string, unknown> })) return;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error("the event stream ended");
        pending.push(...parser.push(value));
      }
    },
    close: () => abort.abort(),
  };
}

test("mend task rerun forgets the step and the ones after it and says so; show lists the steps and the history; refusals say why and exit 1", async () => {
  const dir = join(tempDir(), "steps");
  cpSync(join(root, "test/apps/steps"), dir, { recursive: true });
  const { url } = await serve(dir);
  const stream = await events(url);
  try {
    const spawned = await fetch(`${url}/v1/tasks`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ stateType: "Pipeline", stateId: "cli", method: "run", request: {} }) });
    const uuid = ((await spawned.json()) as { taskId: { taskUuid: string } }).taskId.taskUuid;
    const ended = (attempt: number) => stream.until((e) => e.event === "attempt:end" && e.json.taskUuid === uuid && e.json.attempt === attempt);
    await ended(1);
    const at = ["--application-url", url];

    const rerun = await mend(["task", "rerun", uuid, "--from-step", "second", ...at]);
    expect([rerun.exitCode, rerun.stdout, rerun.stderr]).toEqual([0, `Task will run again from step "second": forgot 3 steps (second, third/Pipeline('cli').bump#1, third).`, ""]);
    await ended(2);

    const show = await mend(["task", "show", uuid, ...at]);
    expect(show.exitCode).toBe(0);
    expect(show.stdout).toContain(
      [
        "Steps (6), in the order they were recorded:",
        "  charge                         atMostOnce   completed  attempt 1",
        "  charge/Pipeline('cli').bump#1  call         completed  attempt 1",
        "  first                          call         completed  attempt 1",
        "  second                         call         completed  attempt 2",
        "  third/Pipeline('cli').bump#1   call         completed  attempt 2",
        "  third                          atLeastOnce  completed  attempt 2",
      ].join("\n"),
    );
    expect(show.stdout).toMatch(/\nHistory:\n {2}\S+Z {2}rerun from step "second" by mend task rerun; forgot second, third\/Pipeline\('cli'\)\.bump#1, third$/);
    const json = JSON.parse((await mend(["task", "show", uuid, "--json", ...at])).stdout) as { steps: unknown[]; history: unknown[] };
    expect([json.steps.length, json.history.length]).toEqual([6, 1]);

    const atMostOnce = await mend(["task", "rerun", uuid, "--from-step", "charge", ...at]);
    expect([atMostOnce.exitCode, atMostOnce.stdout]).toEqual([1, "This step is atMostOnce and has run: running it again could repeat its effect, which atMostOnce promises never to do. Rerun from a step after it."]);
    const unknown = await mend(["task", "rerun", uuid, "--from-step", "fourth", ...at]);
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stdout).toMatch(/^The task has no step "fourth"; its steps are "charge", /);
    const missing = await mend(["task", "rerun", uuid, ...at]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toMatch(/--from-step/);

    expect((await mend(["task", "cancel", uuid, ...at])).stdout).toBe("Task cancelled.");
    const finished = await mend(["task", "rerun", uuid, "--from-step", "second", ...at]);
    expect(finished.exitCode).toBe(1);
    expect(finished.stdout).toMatch(/^Task has finished \(CANCELLED\); a finished task cannot be rerun/);
  } finally {
    stream.close();
  }
});

test("--editor-url that is not a usable link is one line and exit 1, on serve and dev run; a good one reaches the page's session", async () => {
  const dir = join(tempDir(), "steps");
  cpSync(join(root, "test/apps/steps"), dir, { recursive: true });
  const served = await mend(["serve", "--application", "src/main.ts", "--name", "t", "--port", "0", "--editor-url", "javascript:alert('{file}')"], { cwd: dir });
  expect([served.exitCode, served.stderr]).toEqual([1, "mend: --editor-url may not be a javascript: URL."]);
  const dev = await mend(["dev", "run", "--port", "0", "--editor-url", "idea://open?line={line}"], { cwd: dir });
  expect([dev.exitCode, dev.stderr]).toEqual([1, "mend: --editor-url must contain {file} (and may contain {line} and {column}), got 'idea://open?line={line}'."]);
  const { url } = await serve(dir, ["--editor-url", "idea://open?file={file}&line={line}"]);
  const session = (await (await fetch(`${url}/v1/dashboard`)).json()) as { editorUrl: string; dev: boolean };
  expect(session).toMatchObject({ editorUrl: "idea://open?file={file}&line={line}", dev: false });
});
