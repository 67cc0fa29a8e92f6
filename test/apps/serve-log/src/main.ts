// For test/serve-log.test.ts: a task that fails while a file exists (the bug), then
// completes once the test removes it (the fix); another that aborts; one that just works.
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { Application, defineApi, z } from "mend";

export const { Job } = defineApi({
  Job: {
    state: { runs: z.number().default(0) },
    methods: {
      run: {
        kind: "writer",
        request: { bug: z.string(), ms: z.number().default(0) },
        response: { runs: z.number() },
        retry: { initialMs: 50, maxMs: 50, jitter: false },
      },
      refuse: {
        kind: "writer",
        request: {},
        response: z.void(),
        errors: [z.object({ type: z.literal("Refused") })],
      },
    },
  },
});

const JobServicer = Job.servicer({
  async run(ctx, state, req) {
    await sleep(req.ms);
    if (existsSync(req.bug)) throw new Error(`still broken: ${req.bug} exists`);
    state.runs += 1;
    return { runs: state.runs };
  },
  async refuse() {
    throw new Job.RefuseAborted({ type: "Refused" });
  },
});

export default new Application({ servicers: [JobServicer] });
