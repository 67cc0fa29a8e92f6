// `npm run bench [-- NAME…]`: runs the benchmarks of ../shared/docs/performance.md, prints
// one table and writes bench/results.json.
import { writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { hotfix } from "./hotfix.js";
import { cleanUpNow } from "./lib/cleanup.js";
import { markdownTable, textTable, type BenchResult, type Row } from "./lib/report.js";
import { memory } from "./memory.js";
import { postgres } from "./postgres.js";
import { scale } from "./scale.js";
import { startup } from "./startup.js";
import { throughput } from "./throughput.js";
import { timers } from "./timers.js";

export interface BenchContext {
  /** The repository's root. */
  root: string;
  /** dist/cli.js */
  cli: string;
  log: (line: string) => void;
}

const BENCHMARKS: Record<string, (ctx: BenchContext, alone: boolean) => Promise<BenchResult>> = {
  hotfix,
  throughput,
  timers,
  memory,
  startup,
  // Skipped, with one line, where no PostgreSQL binaries are found.
  postgres,
  // Run alone (`npm run bench -- scale`), at full size: a million waiting tasks.
  scale: (ctx, alone) => scale(ctx, alone),
};

export function machine() {
  return { node: process.version, cores: cpus().length, cpu: cpus()[0]?.model.trim() ?? "unknown", kernel: release(), platform: process.platform };
}

export async function main(root: string, args: string[]): Promise<number> {
  const unknown = args.filter((a) => !(a in BENCHMARKS));
  if (unknown.length > 0) {
    console.error(`mend bench: no benchmark ${unknown.join(", ")}; pick from ${Object.keys(BENCHMARKS).join(", ")}.`);
    return 2;
  }
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      cleanUpNow();
      process.exit(signal === "SIGINT" ? 130 : 143);
    });
  process.once("exit", cleanUpNow);

  const names = args.length > 0 ? args : Object.keys(BENCHMARKS);
  const ctx: BenchContext = { root, cli: join(root, "dist/cli.js"), log: (line) => console.log(line) };
  const m = machine();
  ctx.log(`mend bench: ${names.join(", ")} on node ${m.node}, ${m.cores} cores (${m.cpu}), Linux ${m.kernel}`);
  const t0 = performance.now();
  const rows: Row[] = [];
  const notes: string[] = [];
  const details: Record<string, unknown> = {};
  let failed = 0;
  for (const name of names) {
    const started = performance.now();
    ctx.log(`— ${name} …`);
    try {
      const result = await BENCHMARKS[name]!(ctx, args.length === 1);
      rows.push(...result.rows);
      notes.push(...(result.notes ?? []));
      details[name] = result.details;
      ctx.log(`— ${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } catch (e) {
      failed++;
      const message = (e as Error)?.stack ?? String(e);
      console.error(`— ${name} failed: ${message}`);
      rows.push({ benchmark: name, figure: `${name}: did not finish`, value: Number.NaN, unit: "", met: false, note: (e as Error)?.message });
      details[name] = { error: message };
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(`\n${textTable(rows)}\n`);
  for (const n of notes) console.log(n);
  const missed = rows.filter((r) => !r.met).length;
  console.log(`\n${rows.length - missed} of ${rows.length} figures met their target; ${missed} missed. ${seconds.toFixed(1)} s in all.`);
  const file = join(root, "bench/results.json");
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), machine: m, benchmarks: names, seconds, rows, notes, details, markdown: markdownTable(rows) }, null, 2)}\n`);
  console.log(`Wrote ${file}.`);
  return failed > 0 ? 1 : 0;
}
