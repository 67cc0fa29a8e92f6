import { build, type BuildOptions, type Message } from "esbuild";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { appPlugin, IMPORT_META } from "./app-plugin.js";

/** The file name a build gives the bundle (`app.mjs`), beside its source map. */
export const BUNDLE = "app.mjs";

/**
 * How an application entry is bundled: one ES module (top-level await allowed), each
 * file with its own `import.meta`, packages left to Node (see app-plugin.ts).
 */
export function appBuildOptions(entry: string, outdir: string): BuildOptions & { metafile: true } {
  return {
    entryPoints: { app: resolve(entry) },
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // Packages are resolved as Node resolves them: no "module" condition, no "module" field.
    conditions: ["node"],
    mainFields: ["main"],
    define: { "import.meta": IMPORT_META },
    plugins: [appPlugin()],
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
