// 1. Hotfix latency: from writing the fixed file to the failing task's next attempt
// starting on the new version, as the runtime records it (attempt.startedAt, Date.now()).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanUp, tempDir } from "./lib/cleanup.js";
import { DevProcess } from "./lib/dev-process.js";
import { currencyFile, currencyOf, generateApp, MODULES } from "./lib/generate-app.js";
import { attemptsOf, spawnTask } from "./lib/http.js";
import { ratioOf, row, type BenchResult } from "./lib/report.js";
import { summarise } from "./lib/stats.js";
import type { BenchContext } from "./main.js";

const SAVES = 40;
/** The app ten times larger takes longer per save: fewer saves keep the run short. */
const LARGE_SAVES = 20;
const WARMUP = 2;
const LARGE_MODULES = 495;

type Mode = "swap" | "restart";

/** One dev run in `mode`: WARMUP + `saves` saves, each fixing the one task failing right now. */
async function measure(ctx: BenchContext, mode: Mode, modules = MODULES, saves = SAVES): Promise<{ latencies: number[]; stale: number; lines: number; files: number }> {
  const app = generateApp(join(tempDir(`hotfix-${mode}`), "app"), modules);
  const dev = new DevProcess(ctx.cli, app.dir, ["--name", "bench", `--reload=${mode}`, "--effect-validation=disabled"]);
  try {
    const url = await dev.url();
    await dev.until(/v1 ready in \d+ ms/);
    const latencies: number[] = [];
    let stale = 0;
    for (let k = 0; k < WARMUP + saves; k++) {
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
    await cleanUp();
    ctx.log(`  the app ten times larger (${LARGE_MODULES} library modules) …`);
    const largeSwap = await measure(ctx, "swap", LARGE_MODULES, LARGE_SAVES);
    const largeRestart = await measure(ctx, "restart", LARGE_MODULES, LARGE_SAVES);
    const s = summarise(swap.latencies);
    const r = summarise(restart.latencies);
    const ls = summarise(largeSwap.latencies);
    const lr = summarise(largeRestart.latencies);
    const large = `${largeSwap.files} files`;
    const rows = [
      row({ benchmark: "hotfix", figure: "hotfix latency p50", value: s.p50, unit: "ms", target: { op: "<=", value: 75 }, baseline: { label: "restart p50", value: r.p50 }, ratio: ratioOf(s.p50, r.p50, "<=") }),
      row({ benchmark: "hotfix", figure: "hotfix latency p95", value: s.p95, unit: "ms", target: { op: "<=", value: 50 }, baseline: { label: "restart p95", value: r.p95 }, ratio: ratioOf(s.p95, r.p95, "<=") }),
      row({ benchmark: "hotfix", figure: "hotfix latency max", value: s.max, unit: "ms", baseline: { label: "restart max", value: r.max }, ratio: ratioOf(s.max, r.max, "<=") }),
      row({ benchmark: "hotfix", figure: "hotfix: faster than restart (p50)", value: r.p50 / s.p50, unit: "×", target: { op: ">=", value: 4 } }),
      row({ benchmark: "hotfix", figure: `hotfix latency p50, ${large}`, value: ls.p50, unit: "ms", baseline: { label: "restart p50", value: lr.p50 }, ratio: ratioOf(ls.p50, lr.p50, "<=") }),
      row({ benchmark: "hotfix", figure: `hotfix latency p95, ${large}`, value: ls.p95, unit: "ms", target: { op: "<=", value: 150 }, baseline: { label: "restart p95", value: lr.p95 }, ratio: ratioOf(ls.p95, lr.p95, "<=") }),
      row({ benchmark: "hotfix", figure: `hotfix: faster than restart (p50), ${large}`, value: lr.p50 / ls.p50, unit: "×", target: { op: ">=", value: 4 } }),
    ];
    const stale = swap.stale + restart.stale + largeSwap.stale + largeRestart.stale;
    return {
      rows,
      details: {
        app: { files: swap.files, lines: swap.lines },
        large: { files: largeSwap.files, lines: largeSwap.lines },
        saves: SAVES, largeSaves: LARGE_SAVES, warmup: WARMUP,
        swap: { ...s, staleAttempts: swap.stale, samples: swap.latencies },
        restart: { ...r, staleAttempts: restart.stale, samples: restart.latencies },
        largeSwap: { ...ls, staleAttempts: largeSwap.stale, samples: largeSwap.latencies },
        largeRestart: { ...lr, staleAttempts: largeRestart.stale, samples: largeRestart.latencies },
      },
      notes: [
        `hotfix: ${SAVES} saves (+${WARMUP} warm-up) per mode on a generated app of ${swap.files} files / ${swap.lines} lines, and ${LARGE_SAVES} on one of ${largeSwap.files} files / ${largeSwap.lines} lines; mend dev run --effect-validation=disabled.`,
        ...(stale > 0 ? [`hotfix: ${stale} attempt(s) after a save ran a build that missed it; latency is measured to the attempt that ran the fix.`] : []),
      ],
    };
  } finally {
    await cleanUp();
  }
}
