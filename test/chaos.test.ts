// The crash suite: thousands of tasks of every kind while the runtime process is killed
// with SIGKILL at random moments and restarted on the same store; then nothing may be
// lost or duplicated. `npm test` runs a short version; `npm run test:chaos` the long one
// (MEND_CHAOS=long). Replay a run with MEND_CHAOS_SEED=<the seed it printed>.
import { test } from "vitest";
import { chaosSeed, expectNothingLost, runChaos, type ChaosOptions } from "./helpers/chaos.js";

const LONG = process.env.MEND_CHAOS === "long";
const seed = chaosSeed();
console.log(`chaos seed ${seed}: replay with MEND_CHAOS_SEED=${seed}${LONG ? " npm run test:chaos" : " npx vitest run test/chaos.test.ts"}`);

const runs: Record<"serve" | "dev", Omit<ChaosOptions, "mode" | "seed">> = LONG
  ? {
      serve: { tasks: 10_000, kills: 25, killDelayMs: [300, 2500], settleTimeoutMs: 120_000 },
      dev: { tasks: 6000, kills: 20, killDelayMs: [300, 2500], saves: 12, settleTimeoutMs: 120_000 },
    }
  : {
      serve: { tasks: 2000, kills: 4, killDelayMs: [300, 1200] },
      dev: { tasks: 300, kills: 2, killDelayMs: [300, 800], saves: 2 },
    };

test.each(["serve", "dev"] as const)(
  `mend %s: ${LONG ? "long" : "short"} run, SIGKILLed at random moments, loses and duplicates nothing`,
  async (mode) => {
    const options = { mode, seed, ...runs[mode] };
    expectNothingLost(await runChaos(options), options);
  },
  LONG ? 600_000 : 60_000,
);
