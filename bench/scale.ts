// 6. Pending work at scale: tasks due in 30 days, scheduled from writers in batches of
// 5,000 by a runtime in its own process; then the store is opened again by a new process.
// RSS after scheduling and after reopening, time to reopen, list and show on the big store.
import { execa } from "execa";
import { join } from "node:path";
import { cleanUp, tempDir, track } from "./lib/cleanup.js";
import { row, type BenchResult } from "./lib/report.js";
import type { BenchContext } from "./main.js";

const BATCH = 5_000;
const MB = 1024 * 1024;

async function child(ctx: BenchContext, args: string[]): Promise<Record<string, number>> {
  const script = join(ctx.root, "bench/lib/scale-child.mjs");
  const run = track(execa("node", ["--expose-gc", script, ...args], { reject: false }));
  const { stdout, stderr, exitCode } = await run;
  if (exitCode !== 0) throw new Error(`scale child ${args[0]} failed (${exitCode}): ${stderr}`);
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, number>;
}

/** `full`: a million tasks (`npm run bench -- scale`); otherwise 100,000, for the default run. */
export async function scale(ctx: BenchContext, full = false): Promise<BenchResult> {
  const n = full ? 1_000_000 : 100_000;
  try {
    const directory = tempDir("scale");
    ctx.log(`  scheduling ${n.toLocaleString("en-US")} tasks due in 30 days …`);
    const scheduled = await child(ctx, ["schedule", directory, String(n), String(BATCH)]);
    ctx.log(`  scheduled at ${Math.round(scheduled.perSecond!)} tasks/s; RSS ${(scheduled.rssAfter! / MB).toFixed(0)} MB (peak ${(scheduled.rssPeak! / MB).toFixed(0)} MB)`);
    const reopened = await child(ctx, ["reopen", directory]);
    ctx.log(`  reopened in ${reopened.openMs!.toFixed(0)} ms (serving after ${reopened.readyMs!.toFixed(0)} ms); RSS ${(reopened.rssAfter! / MB).toFixed(0)} MB; list ${reopened.listMs!.toFixed(1)} ms; show ${reopened.showMs!.toFixed(1)} ms`);
    const count = n.toLocaleString("en-US");
    return {
      rows: [
        row({ benchmark: "scale", figure: `scale: RSS after scheduling ${count} tasks`, value: scheduled.rssAfter! / MB, unit: "MB", target: { op: "<=", value: 150 } }),
        row({ benchmark: "scale", figure: `scale: scheduling from writers (${count})`, value: scheduled.perSecond!, unit: "tasks/s", target: { op: ">=", value: 50_000 } }),
        row({ benchmark: "scale", figure: `scale: reopening the store (${count} waiting)`, value: reopened.openMs!, unit: "ms", target: { op: "<=", value: 500 } }),
        row({ benchmark: "scale", figure: "scale: RSS after reopening", value: reopened.rssAfter! / MB, unit: "MB", target: { op: "<=", value: 150 } }),
        row({ benchmark: "scale", figure: "scale: list 50 with a status filter", value: reopened.listMs!, unit: "ms", target: { op: "<=", value: 50 } }),
        row({ benchmark: "scale", figure: "scale: list 50 of one method", value: reopened.byMethodMs!, unit: "ms", target: { op: "<=", value: 50 } }),
        row({ benchmark: "scale", figure: "scale: show one task", value: reopened.showMs!, unit: "ms" }),
      ],
      details: { n, scheduled, reopened },
      notes: [
        `scale: ${count} Counter.increment tasks due in 30 days, scheduled by a writer in batches of ${BATCH.toLocaleString("en-US")} (durable, synchronous=FULL), in a process of its own; then a new process opens the store, serves HTTP and lists (median of 7 over HTTP). \`npm run bench -- scale\` runs a million; the default run 100,000.`,
      ],
    };
  } finally {
    await cleanUp();
  }
}
