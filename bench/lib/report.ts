/** One line of the results table: a figure, its target, and the baseline measured in the same run. */
export interface Row {
  benchmark: string;
  figure: string;
  value: number;
  unit: string;
  /** `<=`: lower is better; `>=`: higher is better. None: reported for orientation only. */
  target?: { op: "<=" | ">="; value: number };
  baseline?: { label: string; value: number };
  /** How many times better than the baseline (> 1 is better), when there is one. */
  ratio?: number;
  met: boolean;
  note?: string;
}

/** What each benchmark hands back: its rows, and the raw figures kept in results.json. */
export interface BenchResult {
  rows: Row[];
  details: Record<string, unknown>;
  /** Lines printed under the table (what a figure means, which options were used). */
  notes?: string[];
}

/** A row whose met/missed follows from its value and target. */
export function row(r: Omit<Row, "met"> & { met?: boolean }): Row {
  const ok = !r.target || (r.target.op === "<=" ? r.value <= r.target.value : r.value >= r.target.value);
  return { ...r, met: r.met ?? (Number.isFinite(r.value) && ok) };
}

/** How many times better `value` is than `baseline`, given which direction is better. */
export function ratioOf(value: number, baseline: number, op: "<=" | ">="): number {
  return op === "<=" ? baseline / value : value / baseline;
}

function fmt(n: number, unit: string): string {
  if (!Number.isFinite(n)) return "—";
  const digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : Math.abs(n) >= 1 ? 2 : 3;
  const text = n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
  return unit === "×" ? `${text}×` : `${text} ${unit}`;
}

/** "8.3× faster", "6.8× slower", "7.4× more": the ratio in the direction that reads. */
function ratioText(r: Row): string {
  if (r.ratio === undefined || !Number.isFinite(r.ratio) || r.ratio <= 0) return "—";
  const better = r.ratio >= 1;
  const x = better ? r.ratio : 1 / r.ratio;
  const word = r.unit === "ms" ? (better ? "faster" : "slower") : r.target?.op === ">=" ? (better ? "more" : "less") : better ? "smaller" : "larger";
  return `${x.toFixed(x >= 10 ? 0 : 1)}× ${word}`;
}

export function formatRow(r: Row): string[] {
  return [
    r.figure,
    fmt(r.value, r.unit),
    r.target ? `${r.target.op === "<=" ? "≤" : "≥"} ${fmt(r.target.value, r.unit)}` : "—",
    r.baseline ? `${fmt(r.baseline.value, r.unit)} (${r.baseline.label})` : "—",
    ratioText(r),
    !r.target && r.met ? "" : r.met ? "met" : "MISSED",
  ];
}

const HEADER = ["figure", "value", "target", "baseline (same run)", "ratio", ""];

/** A plain-text table for the terminal. */
export function textTable(rows: readonly Row[]): string {
  const cells = [HEADER, ...rows.map(formatRow)];
  const widths = HEADER.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(HEADER), widths.map((w) => "─".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

/** The same table in Markdown, for the README. */
export function markdownTable(rows: readonly Row[]): string {
  const head = ["figure", "value", "target", "baseline (same run)", "ratio", "result"];
  return [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i === 0 ? "---" : "--:")).join("|")}|`, ...rows.map((r) => `| ${formatRow(r).join(" | ")} |`)].join("\n");
}
