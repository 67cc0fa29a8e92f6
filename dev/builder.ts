// The dev build: each source file built on its own and kept, so that a save rebuilds only
// the files it changed. A graph build (one esbuild context over the whole app, without
// source maps) says which files the entry reaches and where their imports go; it runs at
// the first build and again only when a save changes what a file imports.
import { build, context, stop, type BuildContext, type Message } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { formatBuildErrors, graphBuildOptions, moduleBuildOptions } from "../src/server/build.js";
import type { VersionManifest } from "../src/server/version-manifest.js";
import { needsGraph, resolutionOf, specifiersOf, statKey, type Resolution } from "./module-graph.js";

export { inputsOf } from "./module-graph.js";

/** One source file, built. */
export interface BuiltModule {
  file: string;
  url: string;
  hash: string;
  code: string;
  map: string;
  /** Specifier → what it names (see ModuleRecord.imports). */
  imports: Record<string, string>;
}

export type BuildResult =
  | {
      ok: true;
      entry: string;
      modules: BuiltModule[];
      /** The files this build read: every module's source. */
      inputs: string[];
      /** The files this build compiled (the others were unchanged since they were). */
      compiled: string[];
      /** Whether this build ran the graph build. */
      graph: boolean;
      ms: number;
    }
  | { ok: false; message: string; ms: number };

interface Compiled {
  stat: string;
  hash: string;
  code: string;
  map: string;
  specifiers: string[];
}

/** esbuild's answer once its service process is gone; every later call fails alike until it is started again. */
export function isServiceGone(error: unknown): boolean {
  return /The service (was stopped|is no longer running)/.test((error as Error)?.message ?? String(error));
}

export class Builder {
  readonly #entry: string;
  readonly #cwd = process.cwd();
  #graph: BuildContext | undefined;
  #resolution: Resolution | undefined;
  /** Where the graph build found each package import (see packagesPlugin). */
  readonly #packages = new Map<string, string>();
  /** Each file's specifiers when the graph was last built, joined. */
  #atGraph = new Map<string, string>();
  #compiled = new Map<string, Compiled>();
  /** Versions written and not removed (by manifest path): the hashes each one uses. */
  #versions = new Map<string, string[]>();
  #uses = new Map<string, number>();

  constructor(
    entry: string,
    private readonly outdir: string,
  ) {
    this.#entry = resolve(entry);
  }

  async build(): Promise<BuildResult> {
    const t0 = performance.now();
    try {
      return await this.#build(t0);
    } catch (e) {
      if (!isServiceGone(e)) return this.#failed(e, t0);
    }
    // esbuild's service process died (killed, out of memory): start a new one and a new context.
    this.#graph = undefined;
    this.#resolution = undefined;
    await stop();
    try {
      return await this.#build(t0);
    } catch (e) {
      return this.#failed(e, t0);
    }
  }

  async #build(t0: number): Promise<BuildResult> {
    let graph = false;
    if (!this.#resolution) graph = await this.#buildGraph();
    const compiled = new Map<string, string[]>();
    for (;;) {
      const resolution = this.#resolution!;
      const stats = new Map<string, string>();
      for (const file of resolution.keys()) stats.set(file, statKey(statSync(file, { throwIfNoEntry: false })));
      // A file of the graph is gone: its importers no longer resolve; the graph build says how.
      if (!graph && [...stats.values()].includes("missing")) {
        graph = await this.#buildGraph();
        continue;
      }
      const stale = [...stats].filter(([file, stat]) => this.#compiled.get(file)?.stat !== stat && !compiled.has(file));
      for (const [file, specifiers] of await this.#compile(new Map(stale))) compiled.set(file, specifiers);
      if (graph || !needsGraph(compiled, this.#atGraph, resolution)) break;
      graph = await this.#buildGraph();
    }
    const resolution = this.#resolution!;
    if (graph) this.#atGraph = new Map([...resolution.keys()].map((f) => [f, this.#compiled.get(f)?.specifiers.join("\n") ?? ""]));
    // Files the app no longer reaches are forgotten.
    for (const file of this.#compiled.keys()) if (!resolution.has(file)) this.#compiled.delete(file);
    const modules = [...resolution].map(([file, imports]) => {
      const c = this.#compiled.get(file)!;
      return { file, url: pathToFileURL(file).href, hash: c.hash, code: c.code, map: c.map, imports };
    });
    return {
      ok: true,
      entry: pathToFileURL(this.#entry).href,
      modules,
      inputs: [...resolution.keys()],
      compiled: [...compiled.keys()],
      graph,
      ms: performance.now() - t0,
    };
  }

  /** Runs the graph build; on success the resolution is the new graph's. */
  async #buildGraph(): Promise<true> {
    this.#graph ??= await context({ ...graphBuildOptions(this.#entry, this.outdir, this.#packages), absWorkingDir: this.#cwd });
    const result = await this.#graph.rebuild();
    this.#resolution = resolutionOf(result.metafile!, this.#cwd, this.#packages);
    return true;
  }

  /** Builds `files` (path → its stat before the build), each on its own; returns each one's specifiers. */
  async #compile(files: Map<string, string>): Promise<Map<string, string[]>> {
    const built = new Map<string, string[]>();
    if (files.size === 0) return built;
    const names = [...files.keys()];
    const entryPoints = Object.fromEntries(names.map((file, i) => [`m${i}`, file]));
    const outdir = join(this.outdir, "m");
    const result = await build({ ...moduleBuildOptions(entryPoints, outdir), absWorkingDir: this.#cwd });
    const texts = new Map(result.outputFiles.map((f) => [f.path, f.text]));
    for (const [key, output] of Object.entries(result.metafile.outputs)) {
      if (!output.entryPoint || !key.endsWith(".js")) continue;
      const file = isAbsolute(output.entryPoint) ? output.entryPoint : resolve(this.#cwd, output.entryPoint);
      const path = resolve(this.#cwd, key);
      const code = texts.get(path)!.replace(/\/\/# sourceMappingURL=\S*\s*$/, "");
      const map = absoluteSources(texts.get(`${path}.map`)!, dirname(path));
      const specifiers = specifiersOf(result.metafile.inputs[output.entryPoint]?.imports ?? []);
      const hash = createHash("sha1").update(file).update("\0").update(code).update("\0").update(map).digest("hex").slice(0, 20);
      this.#compiled.set(file, { stat: files.get(file)!, hash, code, map, specifiers });
      built.set(file, specifiers);
    }
    return built;
  }

  async #failed(e: unknown, t0: number): Promise<BuildResult> {
    const errors = (e as { errors?: Message[] }).errors ?? [];
    return { ok: false, message: await formatBuildErrors(errors, (e as Error).message), ms: performance.now() - t0 };
  }

  /** Builds written so far: each manifest's file name is its own, whatever version name it carries. */
  #written = 0;

  /**
   * Writes a version: each module's code and map that is not on disk yet (named by its
   * hash, so unchanged files are never written again) and the version's manifest; returns
   * the manifest's path. The manifest is named by the build, not the version: a version
   * name can come back (a rejected build uses none, and a restarted runtime numbers on from
   * its store), and removing an old version must never remove a newer one.
   */
  write(version: string, result: Extract<BuildResult, { ok: true }>): string {
    mkdirSync(join(this.outdir, "m"), { recursive: true });
    const hashes: string[] = [];
    for (const m of result.modules) {
      hashes.push(m.hash);
      const uses = this.#uses.get(m.hash) ?? 0;
      this.#uses.set(m.hash, uses + 1);
      if (uses > 0) continue;
      const file = join(this.outdir, "m", `${m.hash}.mjs`);
      writeFileSync(`${file}.map`, m.map);
      writeFileSync(file, m.code);
    }
    const manifest: VersionManifest = {
      entry: result.entry,
      modules: result.modules.map((m) => ({ url: m.url, code: `m/${m.hash}.mjs`, hash: m.hash, imports: m.imports })),
    };
    const path = join(this.outdir, `${version}-${++this.#written}.json`);
    writeFileSync(path, JSON.stringify(manifest));
    this.#versions.set(path, hashes);
    return path;
  }

  /**
   * Removes a version written by `write` (its manifest), and each module file no other
   * version uses, once no runtime will load it again.
   */
  remove(file: string): void {
    rmSync(file, { force: true });
    for (const hash of this.#versions.get(file) ?? []) {
      const uses = (this.#uses.get(hash) ?? 1) - 1;
      if (uses > 0) {
        this.#uses.set(hash, uses);
        continue;
      }
      this.#uses.delete(hash);
      const code = join(this.outdir, "m", `${hash}.mjs`);
      rmSync(code, { force: true });
      rmSync(`${code}.map`, { force: true });
    }
    this.#versions.delete(file);
  }

  async dispose(): Promise<void> {
    await this.#graph?.dispose().catch(() => {});
  }
}

/** A source map whose sources are absolute file URLs (they were relative to where the output would have been). */
function absoluteSources(text: string, outputDir: string): string {
  const map = JSON.parse(text) as { sources?: string[]; sourceRoot?: string };
  map.sources = (map.sources ?? []).map((s) => pathToFileURL(resolve(outputDir, map.sourceRoot ?? "", s)).href);
  delete map.sourceRoot;
  return JSON.stringify(map);
}
