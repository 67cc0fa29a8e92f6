import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { Application } from "../api/application.js";
import { MendError } from "../api/errors.js";
import { installLoaderGlobal } from "./shared.js";
import { installStackTraces, keepSourceMapWhile, registerSourceMap } from "./stacks.js";

/**
 * Node flags of a process that loads version after version (the runtime of `mend dev
 * run`), each checked with `npm run bench -- memory` (300 reloads of a 5,000-line app):
 * - vm modules, so that a version is a graph of ES modules that nothing keeps once it is
 *   dropped (Node's own loader keeps every module it imported: +0.5 MB a reload);
 * - no compilation cache: V8's keeps the source of every module compiled through vm for
 *   good (+1 MB a reload);
 * - optimize-for-size: a dropped version's module lives on until its wrapper's weak
 *   callback has run, so more survives each collection than with CommonJS, and V8 grew
 *   the old generation by 40 MB over 300 reloads; with this flag it collects sooner
 *   (+3 MB).
 */
export const RELOADING_FLAGS: readonly string[] = ["--experimental-vm-modules", "--no-compilation-cache", "--optimize-for-size"];

type Namespace = Record<string, unknown>;

/**
 * Imports an app's bundle (an ES module built by buildApp) and returns its Application.
 * Node keeps the module for the life of the process: `mend serve` loads one. The runtime
 * of `mend dev run`, which loads version after version, uses loadVersion instead.
 */
export async function loadApp(file: string): Promise<Application> {
  installLoaderGlobal();
  installStackTraces();
  const url = pathToFileURL(file).href;
  const map = readMap(file);
  if (map !== undefined) registerSourceMap(url, map);
  let exports: Namespace;
  try {
    exports = (await import(url)) as Namespace;
  } catch (e) {
    throw new MendError("LOAD_FAILED", `The application threw while loading: ${(e as Error)?.stack ?? String(e)}`, { cause: e });
  }
  const app = exports.default;
  if (!Application.is(app))
    throw new MendError("LOAD_FAILED", "The application's entry module must `export default new Application({ servicers: [...] })`.");
  if (map !== undefined) keepSourceMapWhile(url, [app, ...app.servicers.flatMap((s) => [s, ...Object.values(s.impl)])]);
  return app;
}

function readMap(file: string): string | undefined {
  try {
    return readFileSync(`${file}.map`, "utf8");
  } catch {
    return undefined;
  }
}
