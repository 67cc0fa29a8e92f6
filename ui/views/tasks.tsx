import { useEffect, useState } from "preact/hooks";
import { get } from "../api";
import { useLive } from "../live";
import { formatRoute } from "../route";
import { Problem, TaskTable, useNow, type TaskSummary } from "./common";

const STATUSES = ["SCHEDULED", "STARTED", "SCHEDULED_RETRY", "SCHEDULED_ITERATION", "COMPLETED", "ABORTED", "CANCELLED"];
const PAGE = 50;
const TASK_EVENTS = /^(task|attempt):/;

interface TypeInfo {
  name: string;
  methods: { name: string; kind: string }[];
}

function go(query: Record<string, string>): void {
  location.hash = formatRoute({ page: "tasks", query });
}

export function TasksView({ query }: { query: Record<string, string> }) {
  const now = useNow();
  const status = query.status ?? "";
  const type = query.type ?? "";
  const method = query.method ?? "";
  const text = query.q ?? "";
  const before = query.before ?? "";
  const [typed, setTyped] = useState(text);
  useEffect(() => setTyped(text), [text]);
  useEffect(() => {
    if (typed === text) return;
    const timer = setTimeout(() => go({ ...query, q: typed, before: "" }), 200);
    return () => clearTimeout(timer);
  }, [typed]);

  const search = new URLSearchParams({ limit: String(PAGE) });
  if (status) search.set("status", status);
  if (type) search.set("stateType", type);
  if (method) search.set("method", method);
  if (text) search.set("text", text);
  if (before) search.set("before", before);
  const list = useLive(() => get<{ tasks: TaskSummary[]; next: number | null }>(`/v1/tasks?${search}`), [search.toString()], (e) => TASK_EVENTS.test(e.type));
  const counts = useLive(() => get<{ tasks: Record<string, { count: number; more: boolean }> }>("/v1/counts"), [], (e) => TASK_EVENTS.test(e.type));
  const types = useLive(() => get<{ types: TypeInfo[] }>("/v1/states"), [], (e) => e.type === "version:loaded");
  useEffect(() => {
    // The first list on screen: the page is usable (measured by its browser test).
    if (list.data && !document.documentElement.dataset.ready) {
      document.documentElement.dataset.ready = "tasks";
      performance.mark("mend:ready");
    }
  }, [list.data]);

  const methods = [...new Set((types.data?.types ?? []).filter((t) => !type || t.name === type).flatMap((t) => t.methods.map((m) => m.name)))].sort();
  return (
    <section>
      <div class="chips" role="group" aria-label="Status">
        <button type="button" class={status === "" ? "chip on" : "chip"} onClick={() => go({ ...query, status: "", before: "" })}>
          all
        </button>
        {STATUSES.map((s) => {
          const c = counts.data?.tasks[s];
          return (
            <button type="button" key={s} class={`chip c-${s.toLowerCase()}${status === s ? " on" : ""}`} data-status={s} onClick={() => go({ ...query, status: status === s ? "" : s, before: "" })}>
              {s} <b>{c ? `${c.count}${c.more ? "+" : ""}` : "…"}</b>
            </button>
          );
        })}
      </div>
      <div class="filters">
        <select aria-label="State type" value={type} onChange={(e) => go({ ...query, type: e.currentTarget.value, method: "", before: "" })}>
          <option value="">every state type</option>
          {(types.data?.types ?? []).map((t) => (
            <option key={t.name} value={t.name}>
              {t.name}
            </option>
          ))}
        </select>
        <select aria-label="Method" value={method} onChange={(e) => go({ ...query, method: e.currentTarget.value, before: "" })}>
          <option value="">every method</option>
          {methods.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
        <input type="search" aria-label="Search" placeholder="uuid, state id, method or error" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} />
      </div>
      <Problem text={list.error} />
      {list.data ? <TaskTable tasks={list.data.tasks} now={now} /> : <p class="empty">Loading…</p>}
      <div class="pager">
        {before ? (
          <button type="button" class="secondary" onClick={() => go({ ...query, before: "" })}>
            ← Newest
          </button>
        ) : null}
        {list.data?.next ? (
          <button type="button" class="secondary" onClick={() => go({ ...query, before: String(list.data!.next) })}>
            Older →
          </button>
        ) : null}
      </div>
    </section>
  );
}
