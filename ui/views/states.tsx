import { useEffect, useState } from "preact/hooks";
import { get, part } from "../api";
import { bytes, stateLabel } from "../format";
import { useLive } from "../live";
import { formatRoute } from "../route";
import { Json, Problem, TaskTable, useNow, type TaskSummary } from "./common";

interface TypeInfo {
  name: string;
  methods: { name: string; kind: string }[];
  inCode: boolean;
  instances: number;
  more: boolean;
}

export function TypesView() {
  const types = useLive(() => get<{ types: TypeInfo[] }>("/v1/states"), [], (e) => e.type === "state:written" || e.type === "version:loaded");
  if (!types.data) return <Problem text={types.error} />;
  return (
    <section>
      <h2>State types</h2>
      <table class="types">
        <thead>
          <tr>
            <th>Type</th>
            <th class="num">Instances</th>
            <th>Methods</th>
          </tr>
        </thead>
        <tbody>
          {types.data.types.map((t) => (
            <tr key={t.name} data-type={t.name}>
              <td>
                <a href={formatRoute({ page: "instances", type: t.name, query: {} })}>{t.name}</a>
                {t.inCode ? null : <span class="dim"> (not in the loaded code)</span>}
              </td>
              <td class="num">
                {t.instances}
                {t.more ? "+" : ""}
              </td>
              <td class="methods">
                {t.methods.map((m) => (
                  <span key={m.name} class={`method m-${m.kind}`} title={m.kind}>
                    {m.name}
                  </span>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function InstancesView({ type, query }: { type: string; query: Record<string, string> }) {
  const prefix = query.q ?? "";
  const after = query.after ?? "";
  const [typed, setTyped] = useState(prefix);
  useEffect(() => setTyped(prefix), [prefix]);
  useEffect(() => {
    if (typed === prefix) return;
    const timer = setTimeout(() => (location.hash = formatRoute({ page: "instances", type, query: { q: typed } })), 200);
    return () => clearTimeout(timer);
  }, [typed]);
  const search = new URLSearchParams({ limit: "50", prefix, after });
  const list = useLive(
    () => get<{ instances: { stateId: string; bytes: number; preview: string }[]; next: string | null }>(`/v1/states/${part(type)}?${search}`),
    [type, search.toString()],
    (e) => e.type === "state:written" && e.data.stateType === type,
  );
  return (
    <section>
      <h2>
        <a href="#/state">State</a> / {type}
      </h2>
      <div class="filters">
        <input type="search" aria-label="Search by id" placeholder="ids that start with…" value={typed} onInput={(e) => setTyped(e.currentTarget.value)} />
      </div>
      <Problem text={list.error} />
      {list.data && list.data.instances.length === 0 ? <p class="empty">No instance{prefix ? ` whose id starts with “${prefix}”` : ""}.</p> : null}
      <table class="instances">
        <tbody>
          {(list.data?.instances ?? []).map((i) => (
            <tr key={i.stateId} data-id={i.stateId}>
              <td>
                <a href={formatRoute({ page: "instance", type, id: i.stateId })}>{stateLabel(type, i.stateId)}</a>
              </td>
              <td class="mono dim preview">{i.preview}</td>
              <td class="num dim">{bytes(i.bytes)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="pager">
        {after ? (
          <button type="button" class="secondary" onClick={() => (location.hash = formatRoute({ page: "instances", type, query: { q: prefix } }))}>
            ← First
          </button>
        ) : null}
        {list.data?.next ? (
          <button type="button" class="secondary" onClick={() => (location.hash = formatRoute({ page: "instances", type, query: { q: prefix, after: list.data!.next! } }))}>
            Next →
          </button>
        ) : null}
      </div>
    </section>
  );
}

export function InstanceView({ type, id }: { type: string; id: string }) {
  const now = useNow();
  const shown = useLive(
    () => get<{ exists: boolean; bytes: number; state?: unknown; cut?: { bytes: number; preview: string }; tasks: TaskSummary[] }>(`/v1/states/${part(type)}/${part(id)}`),
    [type, id],
    (e) => (e.data.stateType === type && e.data.stateId === id) || false,
  );
  return (
    <section>
      <h2>
        <a href="#/state">State</a> / <a href={formatRoute({ page: "instances", type, query: {} })}>{type}</a> / {id}
      </h2>
      <Problem text={shown.error} />
      {shown.data ? (
        <>
          <h3>
            {stateLabel(type, id)} <span class="dim">{shown.data.exists ? bytes(shown.data.bytes) : "never written"}</span>
          </h3>
          {shown.data.cut ? <p class="dim">Too large to show whole ({bytes(shown.data.cut.bytes)}): {shown.data.cut.preview}…</p> : <div class="state"><Json value={shown.data.state} /></div>}
          <h3>Tasks</h3>
          <TaskTable tasks={shown.data.tasks} now={now} />
        </>
      ) : null}
    </section>
  );
}
