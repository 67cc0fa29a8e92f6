/** "3 s ago", "in 2 min", "now": a time relative to `now`, in the largest unit that fits. */
export function relativeTime(at: number, now: number): string {
  const diff = at - now;
  const abs = Math.abs(diff);
  if (abs < 1000) return "now";
  const units: [number, string][] = [[86_400_000, "d"], [3_600_000, "h"], [60_000, "min"], [1000, "s"]];
  const [size, unit] = units.find(([size]) => abs >= size)!;
  const n = Math.floor(abs / size);
  return diff > 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

/** A duration in ms as "41 ms", "2.3 s", "4 min". */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

/** First line of a text, cut to `width` characters with an ellipsis. */
export function cut(text: string, width: number): string {
  const line = text.split("\n")[0]!;
  if (width <= 0) return "";
  return line.length <= width ? line : `${line.slice(0, Math.max(0, width - 1))}…`;
}

/**
 * A plain text table: columns padded to their widest cell, the last column cut so that
 * each line fits `width`.
 */
export function table(header: string[], rows: string[][], width: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fixed = widths.slice(0, -1).reduce((a, b) => a + b + 2, 0);
  const last = Math.max(10, width - fixed);
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? cut(c, last) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/**
 * Text from the store as a terminal may show it: control characters (a newline, an escape
 * that would recolour or move the cursor) and invisible direction overrides are written
 * as escapes, so a state id or an error message cannot forge or hide what is printed.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const named: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
    const code = c.charCodeAt(0);
    return named[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`);
  });
}

/** A time in ms as an ISO date, or the number itself if it is no date (a store written by an older mend). */
export function isoDate(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

export interface Column {
  header: string;
  /** Cut (with an ellipsis) down to this width when the line is too long; fixed if absent. */
  min?: number;
}

/**
 * Column widths for lines of at most `width`: the widest flexible columns are cut first,
 * down to their minimum, and the last column gets what is left (none, if nothing is).
 */
export function fitWidths(columns: Column[], rows: string[][], width: number): number[] {
  const natural = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? "").length)));
  const widths = [...natural];
  const last = columns.length - 1;
  const before = () => widths.slice(0, last).reduce((a, b) => a + b + 2, 0);
  // Leave the last column room for a useful start of its text before it is cut to nothing.
  const wanted = Math.min(natural[last]!, 24);
  // One character at a time from the widest column that may still give one.
  while (before() + wanted > width) {
    let widest = -1;
    for (let i = 0; i < last; i++) {
      const min = columns[i]!.min;
      if (min !== undefined && widths[i]! > min && (widest < 0 || widths[i]! > widths[widest]!)) widest = i;
    }
    if (widest < 0) break;
    widths[widest]!--;
  }
  widths[last] = Math.min(natural[last]!, Math.max(0, width - before()));
  return widths;
}

/** One line of a table with these widths: cells cut to fit, padded, the last one not. */
export function tableLine(cells: string[], widths: number[]): string {
  return cells
    .map((c, i) => {
      const text = c.length > widths[i]! ? cut(c, widths[i]!) : c;
      return i === cells.length - 1 ? text : text.padEnd(widths[i]!);
    })
    .join("  ")
    .trimEnd();
}

/** A plain text table whose lines fit `width` (see fitWidths). */
export function fitTable(columns: Column[], rows: string[][], width: number): string {
  const widths = fitWidths(columns, rows, width);
  return [tableLine(columns.map((c) => c.header), widths), ...rows.map((r) => tableLine(r, widths))].join("\n");
}
