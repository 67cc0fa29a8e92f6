// Loads a version that `mend dev run` built file by file (a VersionManifest) as a graph
// of vm modules, one per source file: each with its own `import.meta`, linked through the
// manifest's imports, sharing `mend` and `zod` with the runtime, packages imported by
// Node. Every module of a version is a new module (its top-level code runs again), but
// only the files a save changed, and those that import them, are read and compiled while
// the save waits: the others were made ahead (spare-modules.ts).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type vm from "node:vm";
import { Application } from "../api/application.js";
import { MendError } from "../api/errors.js";
import { SHARED_MODULES } from "./shared.js";
import { importsKey, SpareModules, type Spare } from "./spare-modules.js";
import { hasSourceMap, installStackTraces, keepSourceMapsWhile, registerSourceMaps } from "./stacks.js";
import { moduleIdentifier, modulesToMake, parseManifest, targetOf, type ModuleRecord, type VersionManifest } from "./version-manifest.js";
import { adopt, externalModule, linkFromLeaves, sourceModule, type Namespace } from "./vm-modules.js";

/** Built code by hash: the next version need not read it again. */
const sources = new Map<string, string>();
const spares = new SpareModules();

/**
 * Evaluates the version a manifest describes (written by the dev Builder) and returns its
 * Application. Needs `--experimental-vm-modules` (RELOADING_FLAGS).
 */
export async function loadVersion(manifestFile: string): Promise<Application> {
  installStackTraces();
  const manifest = readVersion(manifestFile);
  registerSourceMaps(manifestFile, manifest.modules.map(moduleIdentifier), readMaps(manifestFile, manifest));
  let exports: Namespace;
  try {
    exports = await new Version(manifest, await spares.take()).evaluate();
  } catch (e) {
    throw new MendError("LOAD_FAILED", `The application threw while loading: ${(e as Error)?.stack ?? String(e)}`, { cause: e });
  } finally {
    // The next version most likely differs from this one in a file or two.
    forgetAllBut(manifest);
    spares.prepare(manifest, (record) => sources.get(record.hash)!);
  }
  const app = exports.default;
  if (!Application.is(app))
    throw new MendError("LOAD_FAILED", "The application's entry module must `export default new Application({ servicers: [...] })`.");
  keepSourceMapsWhile(manifestFile, [app, ...app.servicers.flatMap((s) => [s, ...Object.values(s.impl)])]);
  return app;
}

/** Settles once the modules made ahead for the next version are made (or making them stopped). */
export function sparesReady(): Promise<void> {
  return spares.ready();
}

/** The manifest, and each module's code not read for an earlier version. */
function readVersion(manifestFile: string): VersionManifest {
  try {
    const manifest = parseManifest(readFileSync(manifestFile, "utf8"));
    for (const m of manifest.modules) if (!sources.has(m.hash)) sources.set(m.hash, readFileSync(join(dirname(manifestFile), m.code), "utf8"));
    return manifest;
  } catch (e) {
    throw new MendError("LOAD_FAILED", `Cannot read the version at ${manifestFile}: ${(e as Error).message}`, { cause: e });
  }
}

/** The source maps not registered for an earlier version (a module unchanged since shares its map). */
function readMaps(manifestFile: string, manifest: VersionManifest): [string, string][] {
  const maps: [string, string][] = [];
  for (const m of manifest.modules) {
    const id = moduleIdentifier(m);
    if (hasSourceMap(id)) continue;
    try {
      maps.push([id, readFileSync(join(dirname(manifestFile), `${m.code}.map`), "utf8")]);
    } catch {
      // Without its map, the module's frames show the built code's lines.
    }
  }
  return maps;
}

function forgetAllBut(manifest: VersionManifest): void {
  const used = new Set(manifest.modules.map((m) => m.hash));
  for (const hash of sources.keys()) if (!used.has(hash)) sources.delete(hash);
}

/** One version's modules: spares where nothing they reach changed, the others made as the entry's links reach them. */
class Version {
  readonly #records: Map<string, ModuleRecord>;
  readonly #modules = new Map<string, vm.Module>();
  readonly #recordOf = new WeakMap<vm.Module, ModuleRecord>();
  readonly #import = (specifier: string, referrer: vm.Module) => this.#dynamicImport(specifier, referrer);

  constructor(
    private readonly manifest: VersionManifest,
    spares: ReadonlyMap<string, Spare>,
  ) {
    this.#records = new Map(manifest.modules.map((m) => [m.url, m]));
    const usable = (record: ModuleRecord) => {
      const spare = spares.get(record.url);
      return spare !== undefined && spare.hash === record.hash && spare.imports === importsKey(record) && (spare.module.status === "unlinked" || spare.module.status === "linked");
    };
    const fresh = modulesToMake(manifest, usable);
    for (const [url, spare] of spares) {
      const record = this.#records.get(url);
      if (!record || fresh.has(url)) continue;
      this.#adopt(record, spare.module);
    }
  }

  async evaluate(): Promise<Namespace> {
    const entry = this.#module(this.#records.get(this.manifest.entry)!);
    await linkFromLeaves(entry, this.#link);
    await entry.evaluate();
    return entry.namespace as Namespace;
  }

  readonly #link = (specifier: string, referrer: vm.Module): vm.Module | Promise<vm.Module> => {
    const target = targetOf(this.#recordOf.get(referrer), specifier);
    const record = this.#records.get(target);
    return record ? this.#module(record) : externalModule(target);
  };

  #module(record: ModuleRecord): vm.Module {
    return this.#modules.get(record.url) ?? this.#adopt(record, sourceModule(record, sources.get(record.hash)!));
  }

  #adopt(record: ModuleRecord, module: vm.Module): vm.Module {
    this.#modules.set(record.url, module);
    this.#recordOf.set(module, record);
    adopt(module, this.#import);
    return module;
  }

  /** `import()` in a module: another module of this version, a shared module, or whatever Node imports. */
  async #dynamicImport(specifier: string, referrer: vm.Module): Promise<vm.Module | Namespace> {
    const target = targetOf(this.#recordOf.get(referrer), specifier);
    const record = this.#records.get(target);
    if (!record && !Object.hasOwn(SHARED_MODULES, target)) return (await import(target)) as Namespace;
    // Another module of this version, or a shared one: linked and evaluated unless it is already.
    const module = record ? this.#module(record) : await externalModule(target);
    await linkFromLeaves(module, this.#link);
    await module.evaluate();
    return module;
  }
}
