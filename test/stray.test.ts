// Errors the app's code lets escape where nobody awaits them fail only the call or task that
// raised them; the server goes on (it used to die, and die again at every restart).
import { cpSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";
import { ExternalContext } from "mend";
import { serve, waitForOutput } from "./helpers/cli.js";
import { tempDir } from "./helpers/temp.js";
import { Stray } from "./apps/stray/main.js";

function copyApp(): string {
  const app = join(tempDir(), "stray");
  mkdirSync(app);
  cpSync(fileURLToPath(new URL("./apps/stray", import.meta.url)), join(app, "src"), { recursive: true });
  return app;
}

/** Polls the task until its attempt has ended with `status` (no event stream to wait on here). */
async function settledAs(url: string, uuid: string, status: string) {
  for (;;) {
    const body = (await (await fetch(`${url}/v1/tasks/${uuid}`)).json()) as {
      task: { status: string; lastError: string };
      attempts: { outcome: string | null; error: { message: string | null; stack: string | null } | null }[];
    };
    if (body.task.status === status && body.attempts.at(-1)?.outcome !== null) return body;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test("under mend serve, a stray rejection and a throw from a timer fail their own task; an error of nobody's is logged; the server goes on", async () => {
  const { url, child } = await serve(copyApp());
  const ctx = new ExternalContext({ url });
  const pid = ((await (await fetch(`${url}/health`)).json()) as { pid: number }).pid;

  const { task: rejects } = await Stray.ref("a").spawn().rejects(ctx);
  const failedFlow = await settledAs(url, rejects.taskId.taskUuid, "SCHEDULED_RETRY");
  expect(failedFlow.task.lastError).toBe("Error: a stray rejection");
  expect(failedFlow.attempts.map((a) => a.outcome)).toEqual(["FAILED"]);

  const { task: throws } = await Stray.ref("b").spawn().throwsLater(ctx);
  const failedWriter = await settledAs(url, throws.taskId.taskUuid, "SCHEDULED_RETRY");
  expect(failedWriter.task.lastError).toBe("Error: thrown from a timer");
  expect(failedWriter.attempts[0]!.error!.stack).toContain("thrown from a timer");
  // The failed writer changed nothing, and its instance is free.
  expect(await Stray.ref("b").bump(ctx)).toEqual({ n: 1 });

  // Called directly, the call fails with it (and the instance is free after).
  await expect(Stray.ref("d").throwsLater(ctx)).rejects.toThrow("thrown from a timer");
  expect(await Stray.ref("d").bump(ctx)).toEqual({ n: 1 });

  const logged = waitForOutput(child, /mend: an error outside any task or call: Error: nobody's error/);
  await Stray.ref("c").outside(ctx);
  await logged;
  expect(((await (await fetch(`${url}/health`)).json()) as { pid: number }).pid).toBe(pid);
  expect(await Stray.ref("c").bump(ctx)).toEqual({ n: 1 });
});
