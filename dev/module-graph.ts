// Decisions of the dev Builder, kept pure: which files make up the app and where their
// imports go (from the graph build's metafile), which of them a save changed, and
// whether the graph must be built again.
import type { Metafile } from "esbuild";
import { isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { packageKey } from "../src/server/app-plugin.js";

type Imports = Metafile["inputs"][string]["imports"];

/** Each app file the entry reaches, absolute, and each of its imports: specifier → what it names. */
export type Resolution = Map<string, Record<string, string>>;

/** The input files of a build, absolute, without packages. */
export function inputsOf(metafile: Metafile, cwd: string): string[] {
  return Object.keys(metafile.inputs)
    .filter((p) => !p.includes("node_modules/") && !p.includes(":"))
    .map((p) => (isAbsolute(p) ? p : resolve(cwd, p)));
}

/**
 * `require()` of a file is not linked: in an ES module it throws as it would under Node,
 * so only the imports a loader links or imports count.
 */
function linked(kind: string): boolean {
  return kind !== "require-call" && kind !== "require-resolve";
}

/**
 * The app's files and their imports, from the graph build's metafile: an import of
 * another app file names that file's URL; a package, the URL of its file that
 * packagesPlugin recorded in `packages`; anything else left external (a builtin, `mend`)
 * stays as written.
 */
export function resolutionOf(metafile: Metafile, cwd: string, packages: ReadonlyMap<string, string>): Resolution {
  const resolution: Resolution = new Map();
  for (const file of inputsOf(metafile, cwd)) resolution.set(file, {});
  for (const [key, input] of Object.entries(metafile.inputs)) {
    const file = isAbsolute(key) ? key : resolve(cwd, key);
    const imports = resolution.get(file);
    if (!imports) continue;
    for (const i of input.imports) {
      if (!linked(i.kind)) continue;
      imports[i.original ?? i.path] = i.external
        ? (packages.get(packageKey(file, i.path)) ?? i.path)
        : pathToFileURL(isAbsolute(i.path) ? i.path : resolve(cwd, i.path)).href;
    }
  }
  return resolution;
}

/** The specifiers a file's own build left in its code, sorted: what its imports are, for comparing. */
export function specifiersOf(imports: Imports): string[] {
  return [...new Set(imports.filter((i) => linked(i.kind)).map((i) => i.original ?? i.path))].sort();
}

/**
 * Whether the graph must be built again after some files were built on their own: one
 * of them imports other things than when the graph was last built (an import added,
 * removed or renamed), or imports something the graph does not resolve.
 */
export function needsGraph(
  built: ReadonlyMap<string, readonly string[]>,
  atGraph: ReadonlyMap<string, string>,
  resolution: Resolution,
): boolean {
  for (const [file, specifiers] of built) {
    if (atGraph.get(file) !== specifiers.join("\n")) return true;
    const resolved = resolution.get(file);
    if (!resolved || specifiers.some((s) => !Object.hasOwn(resolved, s))) return true;
  }
  return false;
}

/** What tells a file's saves apart without reading it: a save moves its mtime, size or inode. */
export function statKey(stat: { mtimeMs: number; size: number; ino: number } | undefined): string {
  return stat ? `${stat.mtimeMs}:${stat.size}:${stat.ino}` : "missing";
}
