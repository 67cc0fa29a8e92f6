// 1. Hotfix latency: from writing the fixed file to the failing task's next attempt
// starting on the new version, as the runtime records it (attempt.startedAt, Date.now()).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanUp, tempDir } from "./lib/cleanup.js";
import { DevProcess } from "./lib/dev-process.js";
import { currencyFile, currencyOf, generateApp } from "./lib/generate-app.js";
import { attemptsOf, spawnTask } from "./lib/http.js";
import { ratioOf, row, type BenchResult } from "./lib/report.js";
import { summarise } from "./lib/stats.js";
import type { BenchContext } from "./main.js";

const SAVES = 40;
const WARMUP = 2;

type Mode = "swap" | "restart";

/** One dev run in `mode`: WARMUP + SAVES saves, each fixing the one task failing right now. */
async function measure(ctx: BenchContext, mode: Mode): Promise<{ latencies: number[]; stale: number; lines: number; files: number }> {
  const app = generateApp(join(tempDir(`hotfix-${mode}`), "app"));
  const dev = new DevProcess(ctx.cli, app.dir, ["--name", "bench", `--reload=${mode}`, "--effect-validation=disabled"]);
  try {
    const url = await dev.url();
    await dev.until(/v1 ready in \d+ ms/);
    const latencies: number[] = [];
    let stale = 0;
    for (let k = 0; k < WARMUP + SAVES; k++) {
      // A new task that fails on the code running now: its currency is not in the table yet.
      const stateId = `s${k}`;
      const from = dev.mark();
      const uuid = await spawnTask(url, { stateType: "Ledger", stateId, method: "reconcile", request: { currency: currencyOf(k) } });
      const label = `Ledger\\('${stateId}'\\)\\.reconcile \\[${uuid.slice(0, 18)}\\]`; // dev prints the first 18 characters of a uuid
      await dev.until(new RegExp(`✗ ${label} failed on v\\d+ \\(attempt 1\\): Error: Unknown currency`), from);

      // The save: the fixed file, which knows the currency.
      const mark = dev.mark();
      const savedAt = Date.now();
      writeFileSync(app.bugFile, currencyFile(k + 1));
      await Promise.all([dev.until(new RegExp(`✓ ${label} completed on v\\d+`), mark), dev.until(/v\d+ ready in/, mark)]);

      // Measured to the attempt that ran the fixed code. An attempt in between would have
      // run a build that missed the save: counted, and shown in the notes.
      const attempts = await attemptsOf(url, uuid);
      const first = attempts[0];
      const fixed = attempts.at(-1);
      if (!first || !fixed || first.outcome !== "FAILED" || fixed.outcome !== "COMPLETED" || fixed.version === first.version)
        throw new Error(`task ${uuid}: unexpected attempts ${JSON.stringify(attempts)}`);
      if (k < WARMUP) continue;
      latencies.push(fixed.startedAt - savedAt);
      stale += attempts.length - 2;
    }
    return { latencies, stale, lines: app.lines, files: app.files };
  } catch (e) {
    throw new Error(`hotfix (${mode}): ${(e as Error).message}`, { cause: e });
  } finally {
    await dev.stop();
  }
}

export async function hotfix(ctx: BenchContext): Promise<BenchResult> {
  try {
    const swap = await measure(ctx, "swap");
    const restart = await measure(ctx, "restart");
    const s = summarise(swap.latencies);
    const r = summarise(restart.latencies);
    const rows = [
      row({ benchmark: "hotfix", figure: "hotfix latency p50", value: s.p50, unit: "ms", target: { op: "<=", value: 75 }, baseline: { label: "restart p50", value: r.p50 }, ratio: ratioOf(s.p50, r.p50, "<=") }),
      row({ benchmark: "hotfix", figure: "hotfix latency p95", value: s.p95, unit: "ms", target: { op: "<=", value: 150 }, baseline: { label: "restart p95", value: r.p95 }, ratio: ratioOf(s.p95, r.p95, "<=") }),
      row({ benchmark: "hotfix", figure: "hotfix latency max", value: s.max, unit: "ms", baseline: { label: "restart max", value: r.max }, ratio: ratioOf(s.max, r.max, "<=") }),
      row({ benchmark: "hotfix", figure: "hotfix: faster than restart (p50)", value: r.p50 / s.p50, unit: "×", target: { op: ">=", value: 4 } }),
    ];
    return {
      rows,
      details: { app: { files: swap.files, lines: swap.lines }, saves: SAVES, warmup: WARMUP, swap: { ...s, staleAttempts: swap.stale, samples: swap.latencies }, restart: { ...r, staleAttempts: restart.stale, samples: restart.latencies } },
      notes: [`hotfix: ${SAVES} saves (+${WARMUP} warm-up) per mode on a generated app of ${swap.files} files / ${swap.lines} lines; mend dev run --effect-validation=disabled.`,
        ...(swap.stale + restart.stale > 0 ? [`hotfix: ${swap.stale + restart.stale} attempt(s) after a save ran a build that missed it (swap ${swap.stale}, restart ${restart.stale}); latency is measured to the attempt that ran the fix.`] : []),
      ],
    };
  } finally {
    await cleanUp();
  }
}
