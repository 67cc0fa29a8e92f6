import { build, type BuildOptions, type Message } from "esbuild";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";

/** How an application entry is bundled: one CommonJS file, packages left to Node. */
export function appBuildOptions(entry: string, outdir: string): BuildOptions & { metafile: true } {
  return {
    entryPoints: { app: resolve(entry) },
    outdir,
    outExtension: { ".js": ".cjs" },
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    packages: "external",
    sourcemap: "linked",
    sourcesContent: false,
    metafile: true,
    write: true,
    logLevel: "silent",
  };
}

export class BuildFailed extends Error {
  constructor(
    readonly errors: Message[],
    readonly text: string,
  ) {
    super(text);
    this.name = "BuildFailed";
  }
}

/** Builds the app once; returns the bundle's path. */
export async function buildApp(entry: string, outdir: string): Promise<string> {
  mkdirSync(outdir, { recursive: true });
  try {
    await build(appBuildOptions(entry, outdir));
  } catch (e) {
    const errors = (e as { errors?: Message[] }).errors ?? [];
    throw new BuildFailed(errors, await formatBuildErrors(errors, (e as Error).message));
  }
  return join(outdir, "app.cjs");
}

/** esbuild's own rendering: file, line, column and a code frame. */
export async function formatBuildErrors(errors: Message[], fallback = "Build failed."): Promise<string> {
  if (errors.length === 0) return fallback;
  const { formatMessages } = await import("esbuild");
  const lines = await formatMessages(errors, { kind: "error", color: false, terminalWidth: 100 });
  return lines.join("").trimEnd();
}
