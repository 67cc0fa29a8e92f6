// npm run bench [-- NAME…]: bundles the TypeScript benchmarks with esbuild (`mend` resolves
// to the built dist/) and runs them. `npm run bench` builds dist/ first.
import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const distIndex = join(root, "dist/index.js");
// Inside node_modules so that the bundle's own imports (execa, better-sqlite3) resolve.
const outfile = join(root, "node_modules/.cache/mend-bench/main.mjs");

await build({
  entryPoints: [join(root, "bench/main.ts")],
  outfile,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  sourcemap: "inline",
  logLevel: "warning",
  plugins: [
    {
      name: "mend-is-dist",
      setup(b) {
        b.onResolve({ filter: /^mend$/ }, () => ({ path: distIndex, external: true }));
      },
    },
  ],
});

process.setSourceMapsEnabled(true);
const { main } = await import(pathToFileURL(outfile).href);
process.exitCode = await main(root, process.argv.slice(2));
