import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { relative, stateLabel } from "../format";
import { formatRoute } from "../route";

export interface Preview {
  bytes: number;
  preview: string;
}

export interface TaskSummary {
  id: string;
  taskId: { stateType: string; stateId: string; taskUuid: string };
  shortUuid?: string;
  method: string;
  status: string;
  dueAt: number | null;
  createdAt: number;
  updatedAt: number;
  attempts: number;
  lastError: string | null;
  iteration: number;
  parentUuid?: string | null;
  request?: Preview | unknown;
  cursor: number;
}

const FINISHED = new Set(["COMPLETED", "ABORTED", "CANCELLED"]);

export function isFinished(status: string): boolean {
  return FINISHED.has(status);
}

/** A task that is failing: it will retry, or waits for code that has its method. */
export function isFailing(t: { status: string; lastError: string | null }): boolean {
  return t.status === "SCHEDULED_RETRY" && t.lastError !== null;
}

export function Status({ status, failing }: { status: string; failing?: boolean }) {
  return <span class={`status s-${status.toLowerCase()}${failing ? " failing" : ""}`}>{failing ? "FAILING" : status}</span>;
}

export function when(t: TaskSummary, now: number): string {
  if (t.status === "STARTED") return `running ${relative(t.updatedAt, now).replace(" ago", "")}`;
  if (isFinished(t.status)) return `ran ${relative(t.updatedAt, now)}`;
  if (t.dueAt === null) return "waiting for code";
  return t.dueAt <= now ? "due now" : `due ${relative(t.dueAt, now)}`;
}

export function TaskTable({ tasks, now }: { tasks: TaskSummary[]; now: number }) {
  if (tasks.length === 0) return <p class="empty">No tasks.</p>;
  return (
    <table class="tasks">
      <thead>
        <tr>
          <th>Task</th>
          <th>State</th>
          <th>Method</th>
          <th>Status</th>
          <th>When</th>
          <th class="num">Tries</th>
        </tr>
      </thead>
      <tbody>
        {tasks.map((t) => {
          const failing = isFailing(t);
          return (
            <tr key={t.taskId.taskUuid} class={failing ? "failing" : ""} data-uuid={t.taskId.taskUuid} data-status={t.status}>
              <td class="mono">
                <a href={formatRoute({ page: "task", uuid: t.taskId.taskUuid })}>{t.shortUuid ?? t.taskId.taskUuid.slice(0, 8)}</a>
              </td>
              <td>
                <a href={formatRoute({ page: "instance", type: t.taskId.stateType, id: t.taskId.stateId })}>{stateLabel(t.taskId.stateType, t.taskId.stateId)}</a>
              </td>
              <td>{t.method}</td>
              <td>
                <Status status={t.status} failing={failing} />
                {failing && t.lastError ? <div class="error-line">{t.lastError}</div> : null}
              </td>
              <td>{when(t, now)}</td>
              <td class="num">{t.attempts}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** A value as formatted JSON: text, never markup. */
export function Json({ value }: { value: unknown }) {
  return <pre class="json">{value === undefined ? "—" : JSON.stringify(value, null, 2)}</pre>;
}

/** Re-renders every second, for relative times. */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
  return now;
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Not a secure context (plain HTTP beyond loopback): copy through a selection.
      const area = document.createElement("textarea");
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    setDone(true);
    setTimeout(() => setDone(false), 1200);
  };
  return (
    <button type="button" class="secondary" title={text} onClick={() => void copy()}>
      {done ? "Copied" : label}
    </button>
  );
}

/** A modal question: the action runs only on "confirm". */
export function Confirm(props: { title: string; confirm: string; onConfirm: () => void; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  return (
    <dialog ref={ref} class="confirm" onClose={props.onClose}>
      <h3>{props.title}</h3>
      {props.children}
      <div class="actions">
        <button type="button" class="secondary" onClick={() => ref.current?.close()}>
          Keep it
        </button>
        <button
          type="button"
          class="danger"
          onClick={() => {
            props.onConfirm();
            ref.current?.close();
          }}
        >
          {props.confirm}
        </button>
      </div>
    </dialog>
  );
}

export function Problem({ text }: { text?: string }) {
  return text ? <p class="problem" role="alert">{text}</p> : null;
}
