import { context, stop, type BuildContext, type Message, type Metafile } from "esbuild";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { appBuildOptions, formatBuildErrors } from "../src/server/build.js";

export type BuildResult =
  | { ok: true; code: string; map: string; inputs: string[]; ms: number }
  | { ok: false; message: string; ms: number };

/** The input files of a build, absolute, without packages. */
export function inputsOf(metafile: Metafile, cwd: string): string[] {
  return Object.keys(metafile.inputs)
    .filter((p) => !p.includes("node_modules/") && !p.includes(":"))
    .map((p) => (isAbsolute(p) ? p : resolve(cwd, p)));
}

/** esbuild's answer once its service process is gone; every later call fails alike until it is started again. */
export function isServiceGone(error: unknown): boolean {
  return /The service (was stopped|is no longer running)/.test((error as Error)?.message ?? String(error));
}

/** An incremental esbuild context for the app; each build's output stays in memory. */
export class Builder {
  #ctx: BuildContext | undefined;

  constructor(
    private readonly entry: string,
    private readonly outdir: string,
  ) {}

  async build(): Promise<BuildResult> {
    const t0 = performance.now();
    try {
      return await this.#build(t0);
    } catch (e) {
      if (!isServiceGone(e)) return this.#failed(e, t0);
    }
    // esbuild's service process died (killed, out of memory): start a new one and a new context.
    this.#ctx = undefined;
    await stop();
    try {
      return await this.#build(t0);
    } catch (e) {
      return this.#failed(e, t0);
    }
  }

  async #build(t0: number): Promise<BuildResult> {
    this.#ctx ??= await context({ ...appBuildOptions(this.entry, this.outdir), write: false });
    const result = await this.#ctx.rebuild();
    const code = result.outputFiles!.find((f) => f.path.endsWith(".mjs"))!.text;
    const map = result.outputFiles!.find((f) => f.path.endsWith(".map"))!.text;
    return { ok: true, code, map, inputs: inputsOf(result.metafile!, process.cwd()), ms: performance.now() - t0 };
  }

  async #failed(e: unknown, t0: number): Promise<BuildResult> {
    const errors = (e as { errors?: Message[] }).errors ?? [];
    return { ok: false, message: await formatBuildErrors(errors, (e as Error).message), ms: performance.now() - t0 };
  }

  /** Builds written so far: each bundle's file name is its own, whatever version name it carries. */
  #written = 0;

  /**
   * Writes a version's bundle and its source map; returns the bundle's path. The file is named
   * by the build, not the version: a version name can come back (a rejected build uses none,
   * and a restarted runtime numbers on from its store), and removing an old file by its name
   * must never remove a newer one.
   */
  write(version: string, code: string, map: string): string {
    mkdirSync(this.outdir, { recursive: true });
    const name = `${version}-${++this.#written}.mjs`;
    const file = join(this.outdir, name);
    writeFileSync(`${file}.map`, map);
    writeFileSync(file, code.replace(/\/\/# sourceMappingURL=app\.mjs\.map\s*$/, `//# sourceMappingURL=${name}.map\n`));
    return file;
  }

  /** Removes a bundle written by `write` (and its map) once no runtime will load it again. */
  remove(file: string): void {
    rmSync(file, { force: true });
    rmSync(`${file}.map`, { force: true });
  }

  async dispose(): Promise<void> {
    await this.#ctx?.dispose().catch(() => {});
  }
}
