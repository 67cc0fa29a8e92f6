// The tests that run mend's sources in-process: the ones that can see a mutant of src/.
// (Tests that drive the built CLI or a child process run dist/, which Stryker does not mutate.)
import { defineConfig } from "vitest/config";
import base from "./vitest.config.js";

// Mutants run on SQLite only: the projects (one of them on PostgreSQL) are left out, so that
// the list below is what runs.
const { projects: _bothStores, ...test } = base.test ?? {};

export default defineConfig({
  ...base,
  test: {
    ...test,
    // The model test runs 200 random sequences by default: enough here with fewer, since every
    // mutant of the engine runs it.
    env: { ...test.env, MEND_MODEL_RUNS: "25" },
    include: [
      "test/runtime.test.ts",
      "test/tasks.test.ts",
      "test/workflows.test.ts",
      "test/faults.test.ts",
      "test/model.test.ts",
      "test/store.test.ts",
      "test/bad-input-store.test.ts",
      "test/bad-input-code.test.ts",
      "test/cancel-race.test.ts",
      "test/unit.test.ts",
      "test/pure.test.ts",
      "test/limits.test.ts",
      "test/window.test.ts",
      "test/reboot.test.ts",
      "test/connections.test.ts",
      "test/dashboard-routes.test.ts",
      "test/server-rules.test.ts",
      "test/dashboard-units.test.ts",
      "test/locks.test.ts",
      "test/engine.test.ts",
      "test/due-window.test.ts",
      "test/own-instance.test.ts",
      "test/executor.test.ts",
      "test/options.test.ts",
      "test/stray-errors.test.ts",
      "test/runtime-api.test.ts",
      "test/executor-errors.test.ts",
      "test/errors.test.ts",
      "test/open.test.ts",
      "test/store-writer.test.ts",
      "test/values.test.ts",
      "test/scheduler.test.ts",
      "test/version.test.ts",
      "test/outside.test.ts",
      "test/inspector.test.ts",
      "test/states.test.ts",
      "test/workflow-steps.test.ts",
      "test/workflow-context.test.ts",
      "test/ids.test.ts",
      "test/reboot-bank.test.ts",
    ],
  },
});
