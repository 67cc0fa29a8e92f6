import pc from "picocolors";
import { limit, plural } from "../src/cli/log-lines.js";

// The lines about tasks are shared with `mend serve`.
export { attemptLine, taskLabel, userStack } from "../src/cli/log-lines.js";

/** `v7 ready in 41 ms (src/email.ts) — retrying 2 failing tasks` */
export function readyLine(version: string, ms: number, changed: string[], retrying: number): string {
  const retry = retrying > 0 ? ` — retrying ${plural(retrying, "failing task")}` : "";
  return `${pc.green(version)} ready in ${Math.round(ms)} ms${filesOf(changed)}${retry}`;
}

/** `Build rejected (src/format.ts): The application threw while loading: …`: a rejected build gets no number. */
export function rejectedLine(changed: string[], message: string): string {
  return `${pc.red("Build rejected")}${filesOf(changed)}: ${message}`;
}

function filesOf(changed: string[]): string {
  if (changed.length === 0) return "";
  return ` (${changed.length > 3 ? `${changed.slice(0, 3).join(", ")}, …` : changed.join(", ")})`;
}

/** Said once at start in `quiet` mode, instead of a line per method. */
export function effectValidationNotice(): string {
  return pc.dim("mend: effect validation runs readers, writers and transactions twice, the first run rolled back, to show effects outside their state; --effect-validation disabled turns it off.");
}

/** When the runtime stopped answering but no task was running. */
export function noTaskLine(hangMs: number): string {
  return `  no task was running: a direct call or the app's own code ran for more than ${limit(hangMs)} without yielding`;
}
