import { useRef, useState } from "preact/hooks";
import { get, part, post, session } from "../api";
import { clock, curlFor, duration, shellQuote, stateLabel } from "../format";
import { useLive } from "../live";
import { formatRoute } from "../route";
import { Confirm, CopyButton, isFailing, isFinished, Json, Problem, Status, TaskTable, useNow, type Preview, type TaskSummary } from "./common";
import { StackView } from "./stack";
import { Steps, type Step } from "./steps";

interface Attempt {
  number: number;
  version: string;
  startedAt: number;
  endedAt: number | null;
  outcome: string | null;
  error: { name: string | null; message: string | null; stack: string | null } | null;
}

interface Shown {
  task: TaskSummary & { request?: unknown; response?: unknown; error?: unknown };
  attempts: Attempt[];
  history: { at: number; action: string; by: string; detail: { fromStep?: string; forgotten?: string[] } }[];
  cut?: Record<string, Preview>;
}

const BY: Record<string, string> = { dashboard: "the dev page", cli: "mend task rerun", api: "the HTTP API" };

export function TaskView({ uuid }: { uuid: string }) {
  const now = useNow();
  const mine = (e: { data: Record<string, unknown> }) => e.data.taskUuid === uuid || e.data.parentUuid === uuid;
  // A task that has not finished is refreshed on every task event: its children and steps move too.
  const status = useRef("");
  const moving = (e: { type: string; data: Record<string, unknown> }) => mine(e) || (/^(task|attempt):/.test(e.type) && !isFinished(status.current));
  const shown = useLive(() => get<Shown>(`/v1/tasks/${part(uuid)}`), [uuid], moving);
  const steps = useLive(() => get<{ steps: Step[] }>(`/v1/tasks/${part(uuid)}/steps`), [uuid], moving);
  const children = useLive(() => get<{ tasks: TaskSummary[] }>(`/v1/tasks?parent=${part(uuid)}&limit=50`), [uuid], (e) => e.data.parentUuid === uuid || /^(task|attempt):/.test(e.type));
  const [message, setMessage] = useState<{ ok: boolean; text: string } | undefined>();
  const [asking, setAsking] = useState<"cancel" | undefined>();

  if (shown.error && !shown.data) return <Problem text={shown.error} />;
  if (!shown.data) return <p class="empty">Loading…</p>;
  const { task, attempts, history, cut } = shown.data;
  status.current = task.status;
  const finished = isFinished(task.status);
  const running = task.status === "STARTED";
  const act = async (what: "retry" | "cancel", done: string) => {
    try {
      await post(`/v1/tasks/${part(uuid)}/${what}`);
      setMessage({ ok: true, text: done });
    } catch (e) {
      setMessage({ ok: false, text: (e as Error).message });
    }
    shown.reload();
  };
  const base = location.origin;
  const command = `mend task show --application-url ${shellQuote(base)} ${task.taskId.taskUuid}`;
  return (
    <section class="task" data-status={task.status}>
      <div class="title">
        <h2>
          <a href={formatRoute({ page: "instance", type: task.taskId.stateType, id: task.taskId.stateId })}>{stateLabel(task.taskId.stateType, task.taskId.stateId)}</a>.{task.method}
        </h2>
        <Status status={task.status} failing={isFailing(task)} />
        <span class="mono dim">{task.taskId.taskUuid}</span>
      </div>
      <div class="toolbar">
        <button type="button" disabled={finished || running} title={finished ? "It has finished." : running ? "It is running." : "Run it now, its backoff reset."} onClick={() => void act("retry", "Task will run now.")}>
          Retry now
        </button>
        <button type="button" class="danger" disabled={finished} onClick={() => setAsking("cancel")}>
          Cancel
        </button>
        <CopyButton text={task.taskId.taskUuid} label="Copy id" />
        <CopyButton text={command} label="Copy mend command" />
        <CopyButton text={curlFor(base, { ...task.taskId, method: task.method, request: task.request }, session.value?.loopback === false)} label="Copy curl" />
      </div>
      {message ? <p class={message.ok ? "notice" : "problem"} role="status">{message.text}</p> : null}
      {asking === "cancel" ? (
        <Confirm title="Cancel this task?" confirm="Cancel the task" onConfirm={() => void act("cancel", "Task cancelled.")} onClose={() => setAsking(undefined)}>
          <p>
            It ends <b>CANCELLED</b>; a running attempt sees <code>ctx.signal</code> abort and what it did is discarded.
          </p>
        </Confirm>
      ) : null}
      <dl class="facts">
        <dt>Created</dt>
        <dd>{clock(task.createdAt)}</dd>
        <dt>{finished ? "Ended" : "Due"}</dt>
        <dd>{finished ? clock(task.updatedAt) : task.dueAt === null ? "waiting for a version that has its method" : clock(task.dueAt)}</dd>
        <dt>Attempts</dt>
        <dd>{task.attempts}</dd>
        {task.iteration > 0 ? (
          <>
            <dt>Loop</dt>
            <dd>{task.iteration} iterations done</dd>
          </>
        ) : null}
        {task.parentUuid ? (
          <>
            <dt>Parent</dt>
            <dd>
              <a class="mono" href={formatRoute({ page: "task", uuid: task.parentUuid })}>
                {task.parentUuid}
              </a>
            </dd>
          </>
        ) : null}
      </dl>
      <div class="values">
        <div>
          <h3>Request</h3>
          {cut?.request ? <p class="dim">{cut.request.bytes} bytes, cut: {cut.request.preview}…</p> : <Json value={task.request} />}
        </div>
        {task.status === "COMPLETED" ? (
          <div>
            <h3>Response</h3>
            {cut?.response ? <p class="dim">{cut.response.bytes} bytes, cut</p> : <Json value={task.response} />}
          </div>
        ) : null}
        {task.status === "ABORTED" ? (
          <div>
            <h3>Declared error</h3>
            <Json value={task.error} />
          </div>
        ) : null}
      </div>
      <h3>Attempts</h3>
      {attempts.length === 0 ? <p class="empty">No attempt yet.</p> : null}
      <ol class="attempts">
        {attempts.map((a) => (
          <li key={a.number} class={`attempt o-${(a.outcome ?? "running").toLowerCase()}`} data-attempt={a.number}>
            <div class="attempt-head">
              <b>#{a.number}</b> <span class="mono">{a.version}</span> <span>{clock(a.startedAt)}</span>
              <span>{a.endedAt === null ? "running" : duration(a.endedAt - a.startedAt)}</span>
              <span class="outcome">{a.outcome ?? "RUNNING"}</span>
            </div>
            {a.error ? (
              a.error.stack ? (
                <StackView stack={a.error.stack} />
              ) : (
                <p class="error-line">
                  {a.error.name ? `${a.error.name}: ` : ""}
                  {a.error.message}
                </p>
              )
            ) : null}
          </li>
        ))}
      </ol>
      {steps.data && steps.data.steps.length > 0 ? <Steps task={task} steps={steps.data.steps} onDone={() => (shown.reload(), steps.reload())} /> : null}
      {children.data && children.data.tasks.length > 0 ? (
        <>
          <h3>Children</h3>
          <TaskTable tasks={children.data.tasks} now={now} />
        </>
      ) : null}
      {history.length > 0 ? (
        <>
          <h3>History</h3>
          <ul class="history">
            {history.map((h, i) => (
              <li key={i}>
                {clock(h.at)}: {h.action === "rerun" ? `rerun from step “${h.detail.fromStep ?? ""}”` : h.action} by {BY[h.by] ?? h.by}
                {h.detail.forgotten ? ` — forgot ${h.detail.forgotten.length} step${h.detail.forgotten.length === 1 ? "" : "s"}: ${h.detail.forgotten.join(", ")}` : ""}
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </section>
  );
}
