import { printable } from "./format.js";

// How `mend task show` prints a workflow's recorded steps and a task's history, and what
// `mend task rerun` says it did.

export interface StepJson {
  alias: string;
  kind: string;
  step: string;
  status: string;
  attempt: number | null;
  loop?: { alias: string; iteration: number };
}

export interface HistoryJson {
  at: number;
  action: string;
  by: string;
  detail: { fromStep?: string; forgotten?: string[] };
}

const WHO: Record<string, string> = { dashboard: "the dev page", cli: "mend task rerun", api: "the HTTP API" };

/** The steps in the order they were recorded: alias, kind, status (what `--from-step` takes). */
export function renderSteps(steps: readonly StepJson[]): string {
  if (steps.length === 0) return "";
  const width = Math.min(60, Math.max(...steps.map((s) => printable(s.alias).length)));
  const lines = [`Steps (${steps.length}), in the order they were recorded:`];
  for (const s of steps) {
    const status = s.status === "started" ? "started, never ended" : s.status;
    const attempt = s.attempt === null ? "" : `  attempt ${s.attempt}`;
    lines.push(`  ${printable(s.alias).padEnd(width)}  ${s.kind.padEnd(11)}  ${status}${attempt}`);
  }
  return lines.join("\n");
}

export function renderHistory(history: readonly HistoryJson[]): string {
  if (history.length === 0) return "";
  return [
    "History:",
    ...history.map((h) => {
      const what = h.action === "rerun" ? `rerun from step "${printable(h.detail.fromStep ?? "")}"` : printable(h.action);
      const forgot = h.detail.forgotten ? `; forgot ${h.detail.forgotten.map(printable).join(", ")}` : "";
      return `  ${new Date(h.at).toISOString()}  ${what} by ${WHO[h.by] ?? printable(h.by)}${forgot}`;
    }),
  ].join("\n");
}

/** What `mend task rerun` prints once the server has done it. */
export function rerunDone(fromStep: string, done: { forgotten: string[]; spawns: string[]; loop?: { alias: string; iteration: number } }): string {
  const n = done.forgotten.length;
  const lines = [`Task will run again from step "${printable(fromStep)}": forgot ${n} step${n === 1 ? "" : "s"} (${done.forgotten.map(printable).join(", ")}).`];
  if (done.loop) lines.push(`The loop "${printable(done.loop.alias)}" goes back to iteration ${done.loop.iteration}.`);
  if (done.spawns.length > 0) lines.push("The tasks spawned by forgotten steps go on; the next attempt spawns new ones.");
  return lines.join("\n");
}
