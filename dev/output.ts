import pc from "picocolors";
import type { AttemptReport } from "./messages.js";

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** `v7 ready in 41 ms (src/email.ts) — retrying 2 failing tasks` */
export function readyLine(version: string, ms: number, changed: string[], retrying: number): string {
  const files = changed.length === 0 ? "" : ` (${changed.length > 3 ? `${changed.slice(0, 3).join(", ")}, …` : changed.join(", ")})`;
  const retry = retrying > 0 ? ` — retrying ${plural(retrying, "failing task")}` : "";
  return `${pc.green(version)} ready in ${Math.round(ms)} ms${files}${retry}`;
}

/** A task id `Type/id/uuid` shown as `Type('id').method [uuid8]`. */
export function taskLabel(taskId: string, method: string): string {
  const [type, id, uuid] = taskId.split("/");
  return `${type}('${decodeURIComponent(id ?? "")}').${method} ${pc.dim(`[${(uuid ?? "").slice(0, 8)}]`)}`;
}

/**
 * Keeps a stack's frames that point at the user's code, dropping Node's and packages'.
 * mend's own frames are already left out where the stack was made (src/server/stacks.ts).
 */
export function userStack(stack: string | undefined): string {
  if (!stack) return "";
  return stack
    .split("\n")
    .slice(1)
    .filter((l) => /^\s+at /.test(l) && !l.includes("node:") && !l.includes("/node_modules/"))
    .map((l) => `    ${l.trim()}`)
    .join("\n");
}

export function attemptLine(r: AttemptReport, withStack: boolean): string {
  const label = taskLabel(r.taskId, r.method);
  if (r.outcome === "COMPLETED") return `  ${pc.green("✓")} ${label} completed on ${r.version} (attempt ${r.attempt})`;
  if (r.outcome === "ITERATED") return `  ${pc.green("↻")} ${label} finished iteration on ${r.version}`;
  if (r.outcome === "ABORTED") return `  ${pc.yellow("■")} ${label} aborted on ${r.version}: ${r.error?.message ?? "declared error"}`;
  const retry = r.retryInMs === undefined ? "" : pc.dim(` — retry in ${(r.retryInMs / 1000).toFixed(1)} s, or save a fix`);
  const head = `  ${pc.red("✗")} ${label} failed on ${r.version} (attempt ${r.attempt}): ${r.error?.name ?? "Error"}: ${r.error?.message ?? ""}${retry}`;
  const stack = withStack ? userStack(r.error?.stack) : "";
  return stack ? `${head}\n${stack}` : head;
}
