// What a loaded app shares with the runtime that loads it. The app's bundle reads these
// through one global, so that one copy of `mend` and `zod` serves every loaded version
// whatever loader evaluates it (vm modules in `mend dev run`, Node's own in `mend serve`).
import { isBuiltin } from "node:module";
import * as zod from "zod";
import * as mend from "../index.js";

/** The key of the global a bundle reads its shared modules and `import.meta.resolve` from. */
export const LOADER_GLOBAL = "mend.loader";

/** Import specifiers that always mean the runtime's own copy, never one beside the app. */
export const SHARED_MODULES: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  mend,
  zod,
  "zod/v4": zod,
};

export interface LoaderGlobal {
  modules: typeof SHARED_MODULES;
  /** `import.meta.resolve` of a source file at `parent`. */
  resolve(specifier: string, parent: string): string;
}

/** Makes the shared modules reachable from bundles; idempotent. */
export function installLoaderGlobal(): void {
  const g = globalThis as unknown as Record<symbol, LoaderGlobal | undefined>;
  g[Symbol.for(LOADER_GLOBAL)] ??= { modules: SHARED_MODULES, resolve: resolveFrom };
}

/**
 * `import.meta.resolve(specifier)` for a source file at `parent`: paths and URLs resolve
 * from the file as Node resolves them; a package name resolves from the project's
 * node_modules, found from mend's own location inside it.
 */
export function resolveFrom(specifier: string, parent: string): string {
  if (/^\.{0,2}\//.test(specifier)) return new URL(specifier, parent).href;
  if (isBuiltin(specifier)) return specifier.startsWith("node:") ? specifier : `node:${specifier}`;
  if (/^[a-z][a-z0-9+.-]*:/i.test(specifier)) return new URL(specifier).href;
  return import.meta.resolve(specifier);
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

const sources = new Map<string, string>();

/** The source of the module a bundle has in place of a shared specifier: every export, read from the global. */
export function sharedModuleSource(specifier: string): string {
  let source = sources.get(specifier);
  if (source === undefined) sources.set(specifier, (source = generateSharedModule(specifier)));
  return source;
}

function generateSharedModule(specifier: string): string {
  const exports = SHARED_MODULES[specifier];
  if (!exports) throw new Error(`${specifier} is not a shared module`);
  const names = Object.keys(exports);
  const m = `globalThis[Symbol.for(${JSON.stringify(LOADER_GLOBAL)})].modules[${JSON.stringify(specifier)}]`;
  const locals = names.map((n, i) => `const e${i} = m[${JSON.stringify(n)}];`).join("\n");
  const list = names.map((n, i) => `e${i} as ${IDENTIFIER.test(n) ? n : JSON.stringify(n)}`).join(", ");
  return `const m = ${m};\n${locals}\nexport { ${list} };\n`;
}
