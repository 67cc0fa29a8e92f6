// Cancel racing with the end of a running writer task (found by the crash suite): the
// task ends either CANCELLED with no change or COMPLETED with its change, never a mix.
import { expect, test } from "vitest";
import { Job, app } from "./apps/flaky.js";
import { start, within } from "./helpers/runtimes.js";

/** Lets the writer's continuation run (and its commit be queued) without a turn of the event loop. */
async function microtasks(n = 50): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

async function race(order: "end-then-cancel" | "cancel-then-end") {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let reached!: () => void;
  const atGate = new Promise<void>((resolve) => (reached = resolve));
  // The writer holds its instance and has read its state: it waits only for the gate.
  const rt = await start(app(() => (reached(), gate)));
  const { task } = await Job.ref("j").spawn().work(rt.context(), { label: "raced" });
  await within(atGate, "the writer to reach the gate");
  let cancel: Promise<boolean>;
  if (order === "end-then-cancel") {
    release();
    await microtasks();
    cancel = rt.cancel(task.taskId.taskUuid);
  } else {
    cancel = rt.cancel(task.taskId.taskUuid);
    release();
  }
  const cancelled = await cancel;
  const outcome = await task.then(
    () => "COMPLETED",
    (e: unknown) => (e as Error).name,
  );
  const { task: info, attempts } = await rt.getTask(task.taskId.taskUuid);
  const { runs } = await Job.ref("j").get(rt.context());
  return { cancelled, outcome, status: info.status, attempts: attempts.map((a) => a.outcome), runs };
}

test("a cancel that arrives after a writer task's end was queued for commit finds it finished", async () => {
  expect(await race("end-then-cancel")).toEqual({ cancelled: false, outcome: "COMPLETED", status: "COMPLETED", attempts: ["COMPLETED"], runs: 1 });
});

test("a writer task that ends while its cancel is being committed is cancelled, its change discarded", async () => {
  expect(await race("cancel-then-end")).toEqual({ cancelled: true, outcome: "Cancelled", status: "CANCELLED", attempts: ["CANCELLED"], runs: 0 });
});
