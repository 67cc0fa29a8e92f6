import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: {
    // Tests and fixtures import the package by its name; run its sources, not dist/.
    alias: [{ find: /^mend$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) }],
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // The CLI and the servers that tests start print plain text, even where a CI variable or a
    // terminal would turn colours on (picocolors colours under CI=…). FORCE_COLOR=0 rather than
    // none: Node warns on stderr when NO_COLOR meets a FORCE_COLOR the runner set.
    env: { NO_COLOR: "1", FORCE_COLOR: "0" },
  },
});
