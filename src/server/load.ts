import Module from "node:module";
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import * as zod from "zod";
import * as mend from "../index.js";
import { Application } from "../api/application.js";
import { MendError } from "../api/errors.js";

type ModuleInternals = Module & {
  _compile(code: string, filename: string): void;
  paths: string[];
};
const ModuleStatics = Module as unknown as { _nodeModulePaths(dir: string): string[] };

/** The modules an app shares with the runtime: one copy each, whatever version is loaded. */
const SHARED: Record<string, unknown> = { mend, zod, "zod/v4": zod };

/**
 * Evaluates a CommonJS bundle of the app and returns its Application. The bundle's module
 * is never put in require's cache, so an old version is garbage once nothing refers to it
 * (importing ESM with a query string would keep every version alive).
 */
export function loadBundle(file: string): Application {
  const code = readFileSync(file, "utf8");
  const m = new Module(file) as ModuleInternals;
  m.filename = file;
  m.paths = ModuleStatics._nodeModulePaths(dirname(file));
  const base = Module.prototype.require;
  // The bundle's `require` calls this module's `require` method.
  m.require = ((id: string) => (Object.hasOwn(SHARED, id) ? SHARED[id] : base.call(m, id))) as NodeJS.Require;
  try {
    m._compile(code, file);
  } catch (e) {
    throw new MendError("LOAD_FAILED", `The application threw while loading: ${(e as Error)?.stack ?? String(e)}`, { cause: e });
  }
  const exported = (m.exports as { default?: unknown }).default ?? m.exports;
  if (!Application.is(exported))
    throw new MendError("LOAD_FAILED", "The application's entry module must `export default new Application({ servicers: [...] })`.");
  return exported;
}
