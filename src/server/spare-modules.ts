// Modules made ahead for the next version. Once a version is loaded, the runtime compiles
// and links, a few milliseconds at a time, a second copy of its modules (a module can be
// evaluated only once); the next version takes those whose file, and everything it
// imports, did not change, and makes only the others. So a save costs the files it
// changed and those that import them, plus running every module's top-level code.
import { setImmediate as yieldToEvents } from "node:timers/promises";
import type vm from "node:vm";
import { externalModule, linkFromLeaves, sourceModule } from "./vm-modules.js";
import { targetOf, type ModuleRecord, type VersionManifest } from "./version-manifest.js";

export interface Spare {
  /** What the module was made from: reusable only for the same code and imports. */
  hash: string;
  imports: string;
  module: vm.SourceTextModule;
}

/** How long a version runs alone before its spares are made: the attempts it retries go first. */
const DELAY_MS = 10;
/** The longest the runtime is kept from its other work at a time while making spares. */
const SLICE_MS = 4;

class Stopped extends Error {}

export class SpareModules {
  #spares = new Map<string, Spare>();
  #generation = 0;
  #making: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #ready: Promise<void> = Promise.resolve();
  #settle: () => void = () => {};

  /** Settles once the spares prepare() asked for are made, or making them stopped. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Starts making spares of `manifest`'s modules, in the background; `source` gives each module's built code. */
  prepare(manifest: VersionManifest, source: (record: ModuleRecord) => string): void {
    clearTimeout(this.#timer);
    this.#settle();
    const generation = ++this.#generation;
    const ready = new Promise<void>((resolve) => (this.#settle = resolve));
    this.#ready = ready;
    this.#timer = setTimeout(() => {
      this.#making = this.#make(manifest, source, generation)
        .catch((e: unknown) => {
          // Stopped by take(): what was made is kept. A module that does not compile or link
          // leaves the rest in no state to reuse: the next version makes its own.
          if (!(e instanceof Stopped)) this.#spares = new Map();
        })
        .finally(this.#settle);
    }, DELAY_MS);
    this.#timer.unref();
  }

  /** Every spare made so far (linked or not), once making has stopped; the next spares are made after prepare(). */
  async take(): Promise<Map<string, Spare>> {
    clearTimeout(this.#timer);
    this.#generation++;
    await this.#making;
    this.#settle();
    const spares = this.#spares;
    this.#spares = new Map();
    return spares;
  }

  async #make(manifest: VersionManifest, source: (record: ModuleRecord) => string, generation: number): Promise<void> {
    const records = new Map(manifest.modules.map((m) => [m.url, m]));
    const spares = new Map<string, Spare>();
    this.#spares = spares;
    let since = performance.now();
    const step = async () => {
      if (performance.now() - since < SLICE_MS) return;
      await yieldToEvents();
      if (generation !== this.#generation) throw new Stopped();
      since = performance.now();
    };
    const make = (record: ModuleRecord) => {
      let spare = spares.get(record.url);
      if (!spare) spares.set(record.url, (spare = { hash: record.hash, imports: importsKey(record), module: sourceModule(record, source(record)) }));
      return spare.module;
    };
    const recordOf = new Map<vm.Module, ModuleRecord>();
    const link = (specifier: string, referrer: vm.Module) => {
      const record = records.get(targetOf(recordOf.get(referrer), specifier));
      if (!record) return externalModule(targetOf(recordOf.get(referrer), specifier));
      const module = make(record);
      recordOf.set(module, record);
      return module;
    };
    const entry = records.get(manifest.entry)!;
    const root = make(entry);
    recordOf.set(root, entry);
    await linkFromLeaves(root, link, step);
  }
}

/** A module's imports as one string, to compare what a spare was linked with. */
export function importsKey(record: ModuleRecord): string {
  return JSON.stringify(record.imports);
}
