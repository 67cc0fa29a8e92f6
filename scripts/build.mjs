// Builds dist/ from src/ and dev/: one ES module per entry with esbuild (packages
// external), then the type declarations of the package (dist/types/, with declaration
// maps) with tsc, so that every build of dist/ is one that `npm pack` may ship.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { chmodSync, rmSync } from "node:fs";
import { createRequire } from "node:module";

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

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: "inherit" });
