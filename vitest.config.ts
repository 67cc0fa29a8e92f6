import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * The runtime suite runs twice: on SQLite files (with every other test), and on PostgreSQL
 * (a server of the test run's own, a schema per test). Tests only PostgreSQL has (several
 * servers on one store, its crash suite, `mend store copy`) are `test/pg-*.test.ts`.
 */
const BOTH_STORES = [
  "test/runtime.test.ts",
  "test/tasks.test.ts",
  "test/window.test.ts",
  "test/model.test.ts",
  "test/faults.test.ts",
  "test/workflows.test.ts",
  "test/reboot.test.ts",
  "test/cancel-race.test.ts",
  "test/limits.test.ts",
  "test/large-values.test.ts",
  "test/ids.test.ts",
  "test/bad-input-code.test.ts",
  "test/dashboard-routes.test.ts",
  "test/engine.test.ts",
  "test/own-instance.test.ts",
];

/**
 * The CLI and the servers that tests start print plain text, even where a CI variable or a
 * terminal would turn colours on (picocolors colours under CI=…). FORCE_COLOR=0 rather than
 * none: Node warns on stderr when NO_COLOR meets a FORCE_COLOR the runner set. Each project
 * names it, so that a project's own env never replaces it.
 */
const PLAIN_TEXT = { NO_COLOR: "1", FORCE_COLOR: "0" };

export default defineConfig({
  resolve: {
    // Tests and fixtures import the package by its name; run its sources, not dist/.
    alias: [{ find: /^mend$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) }],
  },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    env: PLAIN_TEXT,
    projects: [
      { extends: true, test: { name: "sqlite", include: ["test/**/*.test.ts"], exclude: ["test/pg-*.test.ts"], env: PLAIN_TEXT } },
      {
        extends: true,
        test: {
          name: "postgresql",
          include: [...BOTH_STORES, "test/pg-*.test.ts"],
          env: { ...PLAIN_TEXT, MEND_TEST_STORE: "postgresql" },
          globalSetup: ["test/helpers/pg-global.ts"],
        },
      },
    ],
  },
});
