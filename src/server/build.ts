import { build, type BuildOptions, type Message } from "esbuild";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { appPlugin, IMPORT_META, packagesPlugin } from "./app-plugin.js";

/** The file name a build gives the bundle (`app.mjs`), beside its source map. */
export const BUNDLE = "app.mjs";

/** What every build of the app shares: ES modules for Node 20, packages resolved as Node resolves them. */
const COMMON = {
  platform: "node",
  format: "esm",
  target: "node20",
  // No "module" condition, no "module" field: what Node itself would load.
  conditions: ["node"],
  mainFields: ["main"],
  logLevel: "silent",
} as const satisfies BuildOptions;

/**
 * How an application entry is bundled (`mend serve`): one ES module (top-level await
 * allowed), each file with its own `import.meta`, packages left to Node (see app-plugin.ts).
 */
export function appBuildOptions(entry: string, outdir: string): BuildOptions & { metafile: true } {
  return {
    ...COMMON,
    entryPoints: { app: resolve(entry) },
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    define: { "import.meta": IMPORT_META },
    plugins: [appPlugin()],
    sourcemap: "linked",
    sourcesContent: false,
    metafile: true,
    write: true,
  };
}

/**
 * The dev build's map of the app (`mend dev run`): which files the entry reaches and
 * where each of their imports goes, from the metafile and, for packages, `packages` (see
 * packagesPlugin). Its output is not used, so it has no source map.
 */
export function graphBuildOptions(entry: string, outdir: string, packages: Map<string, string>): BuildOptions & { metafile: true; write: false } {
  return {
    ...COMMON,
    entryPoints: [resolve(entry)],
    outdir,
    bundle: true,
    plugins: [packagesPlugin(packages)],
    metafile: true,
    write: false,
  };
}

/**
 * The dev build of some of the app's files, each on its own: every import is left as it
 * is written (the graph build says where it goes), each output has its own source map.
 * Entry names are the keys of `files`.
 */
export function moduleBuildOptions(files: Record<string, string>, outdir: string): BuildOptions & { metafile: true; write: false } {
  return {
    ...COMMON,
    entryPoints: files,
    outdir,
    bundle: true,
    external: ["*"],
    sourcemap: "external",
    sourcesContent: false,
    metafile: true,
    write: false,
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
  return join(outdir, BUNDLE);
}

/** esbuild's own rendering: file, line, column and a code frame. */
export async function formatBuildErrors(errors: Message[], fallback = "Build failed."): Promise<string> {
  if (errors.length === 0) return fallback;
  const { formatMessages } = await import("esbuild");
  try {
    const lines = await formatMessages(errors, { kind: "error", color: false, terminalWidth: 100 });
    return lines.join("").trimEnd();
  } catch {
    // esbuild's service is gone: its messages without the code frame.
    return errors.map((m) => (m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : m.text)).join("\n");
  }
}
