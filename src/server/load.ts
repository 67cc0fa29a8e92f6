import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import vm from "node:vm";
import { Application } from "../api/application.js";
import { MendError } from "../api/errors.js";
import { installLoaderGlobal } from "./shared.js";
import { installStackTraces, keepSourceMapWhile, registerSourceMap } from "./stacks.js";

/**
 * Node flags of a process that loads version after version (the runtime of `mend dev
 * run`), each checked with `npm run bench -- memory` (300 reloads of a 5,000-line app):
 * - vm modules, so that a version is an ES module that nothing keeps once it is dropped
 *   (Node's own loader keeps every module it imported: +0.5 MB a reload);
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
 * Evaluates an app's bundle (an ES module built by buildApp or the dev Builder) and
 * returns its Application. Where vm modules are enabled (RELOADING_FLAGS), the bundle is
 * a vm module that nothing keeps once its version is dropped; elsewhere it is imported
 * by Node, which keeps it for the life of the process (`mend serve` loads one).
 */
export async function loadApp(file: string): Promise<Application> {
  installLoaderGlobal();
  installStackTraces();
  const url = pathToFileURL(file).href;
  const map = readMap(file);
  if (map !== undefined) registerSourceMap(url, map);
  let exports: Namespace;
  try {
    exports = typeof vm.SourceTextModule === "function" ? await evaluateInVm(file, url) : ((await import(url)) as Namespace);
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

async function evaluateInVm(file: string, url: string): Promise<Namespace> {
  const module = quietly(
    () =>
      new vm.SourceTextModule(readFileSync(file, "utf8"), {
        identifier: url,
        initializeImportMeta(meta) {
          meta.url = url;
        },
        importModuleDynamically: ((specifier: string) => import(resolveImport(specifier, url))) as never,
      }),
  );
  await module.link(async (specifier) => synthetic(resolveImport(specifier, url)));
  await module.evaluate();
  return module.namespace as Namespace;
}

/**
 * What the bundle imports: builtins, packages by URL (resolved at build time), or a
 * specifier only known at run time, which resolves as it would from the bundle.
 */
function resolveImport(specifier: string, referrer: string): string {
  return /^\.{0,2}\//.test(specifier) ? new URL(specifier, referrer).href : specifier;
}

/** A package imported by Node (once per process) and handed to the vm module as a module of its own. */
async function synthetic(specifier: string): Promise<vm.Module> {
  const ns = (await import(specifier)) as Namespace;
  const names = Object.keys(ns);
  return new vm.SyntheticModule(
    names,
    function (this: vm.SyntheticModule) {
      for (const name of names) this.setExport(name, ns[name]);
    },
    { identifier: specifier },
  );
}

let warned = false;

/** Runs `f` without Node's one-time "VM Modules is an experimental feature" warning: mend chose them, the user did not. */
function quietly<T>(f: () => T): T {
  if (warned) return f();
  warned = true;
  const emit = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === "string" ? warning : warning.message;
    if (text.startsWith("VM Modules is an experimental feature")) return;
    (emit as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return f();
  } finally {
    process.emitWarning = emit;
  }
}
