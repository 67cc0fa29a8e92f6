// Builds dist/ from src/ and dev/ with esbuild: one ESM file per entry, packages external.
import { build } from "esbuild";
import { chmodSync, rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });

await build({
  entryPoints: { index: "src/index.ts", cli: "src/cli/main.ts", "dev-runtime": "dev/runtime-process.ts", "dev-typecheck": "dev/typecheck-worker.ts" },
  outdir: "dist",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
});

chmodSync("dist/cli.js", 0o755);
