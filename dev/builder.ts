import { context, type BuildContext, type Message, type Metafile } from "esbuild";
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
      this.#ctx ??= await context({ ...appBuildOptions(this.entry, this.outdir), write: false });
      const result = await this.#ctx.rebuild();
      const code = result.outputFiles!.find((f) => f.path.endsWith(".cjs"))!.text;
      const map = result.outputFiles!.find((f) => f.path.endsWith(".map"))!.text;
      return { ok: true, code, map, inputs: inputsOf(result.metafile!, process.cwd()), ms: performance.now() - t0 };
    } catch (e) {
      const errors = (e as { errors?: Message[] }).errors ?? [];
      return { ok: false, message: await formatBuildErrors(errors, (e as Error).message), ms: performance.now() - t0 };
    }
  }

  /** Writes a version's bundle and its source map; returns the bundle's path. */
  write(version: string, code: string, map: string): string {
    mkdirSync(this.outdir, { recursive: true });
    const file = join(this.outdir, `${version}.cjs`);
    writeFileSync(`${file}.map`, map);
    writeFileSync(file, code.replace(/\/\/# sourceMappingURL=app\.cjs\.map\s*$/, `//# sourceMappingURL=${version}.cjs.map\n`));
    return file;
  }

  /** Removes a version's files once no runtime will load it again. */
  remove(version: string): void {
    const file = join(this.outdir, `${version}.cjs`);
    rmSync(file, { force: true });
    rmSync(`${file}.map`, { force: true });
  }

  async dispose(): Promise<void> {
    await this.#ctx?.dispose();
  }
}
