// Builds dist/ from src/ and dev/: one ES module per entry with esbuild (packages
// external), then the type declarations of the package (dist/types/, with declaration
// maps) with tsc, so that every build of dist/ is one that `npm pack` may ship. The
// dashboard's page (ui/) is bundled into dist/dashboard/: one script and one style sheet,
// minified, for browsers, loading nothing from elsewhere.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, rmSync } from "node:fs";
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

await build({
  entryPoints: { app: "ui/main.tsx", "app-style": "ui/style.css" },
  outdir: "dist/dashboard",
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome110", "firefox115", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
// esbuild names a CSS entry after itself: app.css beside app.js.
copyFileSync("dist/dashboard/app-style.css", "dist/dashboard/app.css");
rmSync("dist/dashboard/app-style.css");
for (const file of ["index.html", "favicon.svg"]) copyFileSync(`ui/${file}`, `dist/dashboard/${file}`);

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { stdio: "inherit" });
