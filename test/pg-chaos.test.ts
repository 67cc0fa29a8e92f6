// The crash suite on PostgreSQL: three `mend serve` on one store share a seeded workload of
// every kind of task, sent to whichever server is up; servers are SIGKILLed at random
// moments and restarted (a killed server's tasks run again elsewhere once its 2 s lease has
// ended). Then every task, counter and logged effect is checked against the store. Replay a
// run with MEND_CHAOS_SEED=<the seed it printed>; MEND_CHAOS=long runs the long version.
import { test } from "vitest";
import { chaosSeed, expectNothingLost, runChaos } from "./helpers/chaos.js";
import { newSchemaUrl } from "./helpers/stores.js";

const LONG = process.env.MEND_CHAOS === "long";
const seed = chaosSeed();

// Not in `npm test` while the faults it finds stand (README, "Running on several servers"):
// about one short run in six on a busy 2-core machine fails (tasks STARTED for good; leases
// lost over and over, a deadlock on cancel, an atMostOnce step run twice), and CI must not
// land or refuse a change by chance. `npm run test:chaos` runs the long version;
// MEND_CHAOS=short runs the short one.
test.runIf(LONG || process.env.MEND_CHAOS === "short")(
  `three mend serve on one PostgreSQL store: ${LONG ? "long" : "short"} run, servers SIGKILLed at random moments, loses and duplicates nothing`,
  async () => {
    console.log(`chaos cluster seed ${seed}: replay with MEND_CHAOS_SEED=${seed} npx vitest run --project postgresql test/pg-chaos.test.ts`);
    const options = LONG
      ? { tasks: 10_000, kills: 25, killDelayMs: [300, 2500] as [number, number], settleTimeoutMs: 180_000 }
      : { tasks: 2000, kills: 6, killDelayMs: [300, 1200] as [number, number], settleTimeoutMs: 90_000 };
    expectNothingLost(await runChaos({ mode: "cluster", store: await newSchemaUrl(), servers: 3, seed, ...options }), { seed, ...options });
  },
  // Room for the settle time, the stop (30 s at most) and the report: a run that fails says why.
  LONG ? 900_000 : 240_000,
);
