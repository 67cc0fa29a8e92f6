// How the page writes times, durations, sizes and commands.

/** "3 s ago", "in 2 min", "just now". */
export function relative(at: number, now: number): string {
  const ms = at - now;
  const abs = Math.abs(ms);
  if (abs < 1000) return "just now";
  const [n, unit] =
    abs < 60_000 ? [abs / 1000, "s"] : abs < 3_600_000 ? [abs / 60_000, "min"] : abs < 86_400_000 ? [abs / 3_600_000, "h"] : [abs / 86_400_000, "d"];
  const text = `${Math.floor(n)} ${unit}`;
  return ms < 0 ? `${text} ago` : `in ${text}`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function clock(at: number): string {
  const d = new Date(at);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** `Type('id')`, as mend writes a state instance. */
export function stateLabel(stateType: string, stateId: string): string {
  return `${stateType}('${stateId}')`;
}

/** A word for the shell: single-quoted, any single quote closed, escaped and reopened. */
export function shellQuote(text: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The `curl` that spawns the same task again. */
export function curlFor(base: string, task: { stateType: string; stateId: string; method: string; request: unknown }, withSecret: boolean): string {
  const body = JSON.stringify({ stateType: task.stateType, stateId: task.stateId, method: task.method, request: task.request });
  const auth = withSecret ? ` -H "authorization: Bearer $MEND_ADMIN_CREDENTIAL"` : "";
  return `curl -X POST ${shellQuote(`${base}/v1/tasks`)} -H 'content-type: application/json'${auth} -d ${shellQuote(body)}`;
}
