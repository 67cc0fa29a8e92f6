import { useState } from "preact/hooks";
import { isRefusal, planRerun, type RerunPlan } from "../../src/runtime/steps";
import { part, post } from "../api";
import { clock } from "../format";
import { Confirm, isFinished, Json, type TaskSummary } from "./common";
import { groupSteps, type Step } from "./steps-group";

export type { Step };

function iterationOf(s: Step): number | undefined {
  const value = s.value as { iteration?: unknown } | undefined;
  return typeof value?.iteration === "number" ? value.iteration : undefined;
}

export function Steps({ task, steps, onDone }: { task: TaskSummary; steps: Step[]; onDone: () => void }) {
  const [asking, setAsking] = useState<{ step: Step; plan: RerunPlan } | undefined>();
  const [message, setMessage] = useState<{ ok: boolean; text: string } | undefined>();
  const records = steps.map((s) => ({ alias: s.alias, kind: s.kind, status: s.status, ...(s.kind === "loop" && iterationOf(s) !== undefined ? { iteration: iterationOf(s)! } : {}) }));
  const taskWhy = isFinished(task.status)
    ? `The task has finished (${task.status}); a finished task cannot be rerun.`
    : task.status === "STARTED"
      ? "The task is running; rerun once its attempt has ended."
      : undefined;
  const rerun = async (step: Step) => {
    try {
      const done = await post<{ forgotten: string[] }>(`/v1/tasks/${part(task.taskId.taskUuid)}/rerun`, { fromStep: step.alias, by: "dashboard" });
      setMessage({ ok: true, text: `Rerunning from “${step.alias}”: forgot ${done.forgotten.length} step${done.forgotten.length === 1 ? "" : "s"}; the task runs now.` });
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    }
    onDone();
  };
  return (
    <>
      <h3>Steps</h3>
      {message ? <p class={message.ok ? "notice" : "problem"} role="status">{message.text}</p> : null}
      <ol class="steps">
        {groupSteps(steps).map((g, gi) => (
          <li key={gi} class={g.loop ? "iteration" : "plain"}>
            {g.loop ? (
              <div class="iteration-head">
                {g.loop.alias} — iteration {g.loop.iteration}
              </div>
            ) : null}
            <ol>
              {g.steps.map((s) => {
                const plan = planRerun(records, s.alias);
                const why = taskWhy ?? (isRefusal(plan) ? plan.message : undefined);
                return (
                  <li key={s.alias} class={`step k-${s.kind} st-${s.status}`} data-alias={s.alias}>
                    <div class="step-head">
                      <code class="alias">{s.alias}</code>
                      <span class="kind">{s.kind}</span>
                      <span class="dim">{s.step}</span>
                      <span class={`step-status st-${s.status}`}>{s.status === "started" ? "started, never ended" : s.status}</span>
                      <span class="dim">
                        {clock(s.recordedAt)}
                        {s.attempt !== null ? ` · attempt ${s.attempt}` : ""}
                      </span>
                      <button type="button" class="secondary small" disabled={why !== undefined} title={why ?? "Forget this step and the ones after it; the task runs again now."} onClick={() => !isRefusal(plan) && setAsking({ step: s, plan })}>
                        Rerun from here
                      </button>
                    </div>
                    {why && s.kind === "atMostOnce" && isRefusal(plan) ? <p class="why dim">{plan.message}</p> : null}
                    {s.cut ? <p class="dim">{s.cut.bytes} bytes: {s.cut.preview}…</p> : s.value !== undefined ? <Json value={s.value} /> : null}
                  </li>
                );
              })}
            </ol>
          </li>
        ))}
      </ol>
      {asking ? (
        <Confirm title={`Rerun from “${asking.step.alias}”?`} confirm="Forget and rerun" onConfirm={() => void rerun(asking.step)} onClose={() => setAsking(undefined)}>
          <p>These recorded steps are forgotten; the task runs now on the code loaded now, and runs them again. The steps before keep their values.</p>
          <ul class="forget">
            {asking.plan.forget.map((a) => (
              <li key={a}>
                <code>{a}</code>
              </li>
            ))}
          </ul>
          {asking.plan.spawns.length > 0 ? <p>The tasks spawned by forgotten steps go on; the next attempt spawns new ones.</p> : null}
          {asking.plan.loop ? (
            <p>
              The loop <code>{asking.plan.loop.alias}</code> goes back to iteration {asking.plan.loop.iteration}.
            </p>
          ) : null}
        </Confirm>
      ) : null}
    </>
  );
}
