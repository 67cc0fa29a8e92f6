import { get } from "../api";
import { clock, duration } from "../format";
import { useLive } from "../live";
import { Problem } from "./common";

interface Version {
  version: string;
  loadedAt: number;
  changed: string[];
  buildMs: number | null;
  loadMs: number | null;
  retrying: number | null;
}

type Entry =
  | { kind: "loaded"; at: number; version: string }
  | { kind: "build-failed"; at: number; message: string }
  | { kind: "rejected"; at: number; version: string; message: string }
  | { kind: "restarted"; at: number; reason: string };

export function DevView({ dev }: { dev: boolean }) {
  const shown = useLive(() => get<{ current: string; versions: Version[]; log: Entry[] }>("/v1/versions"), [], (e) => e.type.startsWith("dev:") || e.type === "version:loaded");
  if (!shown.data) return <Problem text={shown.error} />;
  const problems = shown.data.log.filter((e) => e.kind !== "loaded");
  return (
    <section>
      <h2>Versions</h2>
      {dev ? null : <p class="dim">This server runs one build (mend serve); mend dev run loads a new version on each save.</p>}
      <table class="versions">
        <thead>
          <tr>
            <th>Version</th>
            <th>Loaded</th>
            <th>Files changed</th>
            <th class="num">Build</th>
            <th class="num">Load</th>
            <th class="num">Retried</th>
          </tr>
        </thead>
        <tbody>
          {shown.data.versions.map((v) => (
            <tr key={v.version} class={v.version === shown.data!.current ? "current" : ""} data-version={v.version}>
              <td class="mono">{v.version}</td>
              <td>{clock(v.loadedAt)}</td>
              <td class="mono">{v.changed.length > 0 ? v.changed.join(", ") : "—"}</td>
              <td class="num">{duration(v.buildMs)}</td>
              <td class="num">{duration(v.loadMs)}</td>
              <td class="num">{v.retrying ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Builds and restarts</h2>
      {problems.length === 0 ? <p class="empty">No failed build, rejected version or restart{dev ? " since this runtime started" : ""}.</p> : null}
      <ol class="log">
        {problems.map((e, i) => (
          <li key={i} class={`log-${e.kind}`}>
            <div>
              <b>{e.kind === "build-failed" ? "Build failed" : e.kind === "rejected" ? `${e.version} rejected` : "Runtime restarted"}</b> <span class="dim">{clock(e.at)}</span>
            </div>
            <pre class="frame-text">{e.kind === "restarted" ? e.reason : e.message}</pre>
          </li>
        ))}
      </ol>
    </section>
  );
}
