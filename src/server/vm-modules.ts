// The vm modules a loaded version is made of (see load-version.ts): one per source file,
// each with its own `import.meta`, plus the modules every version shares (`mend`, `zod`,
// packages imported by Node).
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import { resolveFrom, SHARED_MODULES } from "./shared.js";
import { moduleIdentifier, type ModuleRecord } from "./version-manifest.js";

export type Namespace = Record<string, unknown>;

/** What a module's `import()` gives, from the version that owns the module. */
export type DynamicImport = (specifier: string, referrer: vm.Module) => Promise<vm.Module | Namespace>;

/**
 * The version each module belongs to, for its `import()`: a module may be made before
 * its version exists (see spare-modules.ts).
 */
const owners = new WeakMap<vm.Module, DynamicImport>();

/** Gives `module`'s `import()` calls to `importer` (the version that uses it). */
export function adopt(module: vm.Module, importer: DynamicImport): void {
  owners.set(module, importer);
}

let compiled = 0;

/** How many modules of source files this process has compiled (each version's, and the spares). */
export function compiledModules(): number {
  return compiled;
}

/** The module of one source file, compiled from its built code. */
export function sourceModule(record: ModuleRecord, source: string): vm.SourceTextModule {
  const url = record.url;
  compiled++;
  return quietly(
    () =>
      new vm.SourceTextModule(source, {
        identifier: moduleIdentifier(record),
        initializeImportMeta(meta) {
          const filename = fileURLToPath(url);
          Object.assign(meta, { url, filename, dirname: dirname(filename), resolve: (specifier: string) => resolveFrom(specifier, url) });
        },
        importModuleDynamically: ((specifier: string, referrer: vm.Module) => {
          const importer = owners.get(referrer);
          return importer ? importer(specifier, referrer) : Promise.reject(new Error(`import(${JSON.stringify(specifier)}) from a module of no loaded version`));
        }) as never,
      }),
  );
}

/** Modules of packages and shared modules, made once per process and linked by every version. */
const external = new Map<string, vm.Module | Promise<vm.Module>>();

/** A shared module (the runtime's own copy) or a package or builtin imported by Node, as a module of its own. */
export function externalModule(specifier: string): vm.Module | Promise<vm.Module> {
  let module = external.get(specifier);
  if (!module) {
    const shared = Object.hasOwn(SHARED_MODULES, specifier) ? SHARED_MODULES[specifier] : undefined;
    module = shared ? synthetic(specifier, shared) : import(specifier).then((ns: Namespace) => synthetic(specifier, ns));
    external.set(specifier, module);
    // A package that fails to import is tried again by the next version.
    if (module instanceof Promise) module.then((m) => external.set(specifier, m), () => external.delete(specifier));
  }
  return module;
}

function synthetic(specifier: string, ns: Readonly<Namespace>): vm.SyntheticModule {
  const names = Object.keys(ns);
  return new vm.SyntheticModule(
    names,
    function (this: vm.SyntheticModule) {
      for (const name of names) this.setExport(name, ns[name]);
    },
    { identifier: specifier },
  );
}

export type Linker = (specifier: string, referrer: vm.Module) => vm.Module | Promise<vm.Module>;

/**
 * Links `root` and every module it reaches, dependencies first, each with link(); `step`
 * runs between modules (to yield, or to stop by throwing). Node 20 holds a module's links
 * to its dependencies strongly until that module itself is linked by link(), which
 * link() does only for the module it is called on: linked from the entry alone, a
 * dropped version is freed one level of imports per garbage collection (a chain of 500
 * imports, 500 collections).
 */
export async function linkFromLeaves(root: vm.Module, link: Linker, step: () => void | Promise<void> = () => {}): Promise<void> {
  const order: vm.Module[] = [];
  const seen = new Set<vm.Module>([root]);
  const dependencies = (module: vm.Module) =>
    module instanceof vm.SourceTextModule && module.status === "unlinked" ? module.dependencySpecifiers.map((s) => link(s, module)) : [];
  // Depth first, iteratively: an app's imports may chain hundreds deep.
  const stack = [{ module: root, next: dependencies(root), at: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.at < top.next.length) {
      const next = top.next[top.at++]!;
      const dependency = next instanceof Promise ? await next : next;
      if (seen.has(dependency)) continue;
      seen.add(dependency);
      await step();
      stack.push({ module: dependency, next: dependencies(dependency), at: 0 });
      continue;
    }
    stack.pop();
    order.push(top.module);
  }
  for (const module of order) {
    if (module.status !== "unlinked") continue;
    try {
      await module.link(link);
    } catch (e) {
      throw importedBy(e, module);
    }
    await step();
  }
}

/**
 * V8's error for an import that does not link (`does not provide an export named …`)
 * names what was imported, not the file that imports it; linked from the leaves up, that
 * file is the module being linked. Its stack would only show mend's own frames.
 */
function importedBy(error: unknown, module: vm.Module): unknown {
  if (!(error instanceof SyntaxError) || !module.identifier.startsWith("file:")) return error;
  const file = fileURLToPath(module.identifier.replace(/[?#].*$/, ""));
  const named = new SyntaxError(`${error.message} (imported by ${file})`, { cause: error });
  named.stack = `SyntaxError: ${named.message}`;
  return named;
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
