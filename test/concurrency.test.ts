// `--concurrency` bounds how many attempts run at once, under mend serve and mend dev run.
import { cpSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";
import { serve } from "./helpers/cli.js";
import { DevRun } from "./helpers/dev.js";
import { tempDir } from "./helpers/temp.js";

/** The flaky app as an app folder of its own: Counter.increment holds while its gate file exists. */
function flakyApp(): string {
  const app = join(tempDir(), "app");
  mkdirSync(join(app, "src"), { recursive: true });
  cpSync(fileURLToPath(new URL("./apps/flaky.ts", import.meta.url)), join(app, "src/main.ts"));
  return app;
}

type Attempt = { startedAt: number; endedAt: number | null };

async function show(url: string, uuid: string): Promise<{ status: string; attempts: Attempt[] }> {
  const body = (await (await fetch(`${url}/v1/tasks/${uuid}`)).json()) as { task: { status: string }; attempts: Attempt[] };
  return { status: body.task.status, attempts: body.attempts };
}

async function spawn(url: string, stateId: string, gate = ""): Promise<string> {
  const res = await fetch(`${url}/v1/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ stateType: "Counter", stateId, method: "increment", request: { gate } }),
  });
  return ((await res.json()) as { taskId: { taskUuid: string } }).taskId.taskUuid;
}

/** A's attempt holds the only slot until its gate goes; B, due meanwhile, starts only after A ended. */
async function oneAtATime(url: string, app: string): Promise<void> {
  const gate = join(app, "gate");
  writeFileSync(gate, "");
  const a = await spawn(url, "a", gate);
  // Polled: the task's status is what says it runs (there is no event to wait on over HTTP here).
  while ((await show(url, a)).status !== "STARTED") await new Promise((resolve) => setTimeout(resolve, 10));
  const b = await spawn(url, "b");
  rmSync(gate);
  for (const uuid of [a, b]) await fetch(`${url}/v1/tasks/${uuid}/wait?timeout=20000`);
  const [first] = (await show(url, a)).attempts;
  const [second] = (await show(url, b)).attempts;
  expect(second!.startedAt).toBeGreaterThanOrEqual(first!.endedAt!);
}

test("mend serve --concurrency 1 runs one attempt at a time", async () => {
  const app = flakyApp();
  const { url } = await serve(app, ["--concurrency", "1"]);
  await oneAtATime(url, app);
});

test("mend dev run --concurrency 1 runs one attempt at a time", async () => {
  const app = flakyApp();
  const dev = new DevRun(app, ["--name", "c", "--concurrency", "1", "--application", "src/main.ts"]);
  const url = await dev.url();
  await dev.until(/v1 ready/);
  await oneAtATime(url, app);
});
