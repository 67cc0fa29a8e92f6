// What `mend dev run` hands its runtime for one version of the app: each source file
// built on its own (content-addressed, so a save writes only what changed) and how each
// file's imports resolve. The runtime loads it as a graph of ES modules, one per file.

/** One source file of a version. */
export interface ModuleRecord {
  /** The source file's URL: the module's `import.meta.url`, and its name in the graph. */
  url: string;
  /** The built code, relative to the manifest's folder; its source map is beside it (`.map`). */
  code: string;
  /** Changes whenever the built code or its map does: unchanged files keep it across versions. */
  hash: string;
  /**
   * Each import specifier as written in the built code, and what it names: another module
   * of the version (its url), a package file (its URL), a builtin, or a shared module
   * (`mend`, `zod`).
   */
  imports: Record<string, string>;
}

export interface VersionManifest {
  /** The url of the entry module, which default-exports the Application. */
  entry: string;
  modules: ModuleRecord[];
}

/**
 * The name V8 gives a module's frames in stacks: its file, and the hash that tells two
 * versions of the file apart (each has its own source map).
 */
export function moduleIdentifier(record: Pick<ModuleRecord, "url" | "hash">): string {
  return `${record.url}?${record.hash}`;
}

/** A manifest read from disk, checked enough that a loader can trust its shape. */
export function parseManifest(text: string): VersionManifest {
  const value = JSON.parse(text) as Partial<VersionManifest>;
  if (typeof value.entry !== "string" || !Array.isArray(value.modules)) throw new Error("not a version manifest");
  for (const m of value.modules)
    if (typeof m?.url !== "string" || typeof m.code !== "string" || typeof m.hash !== "string" || typeof m.imports !== "object" || m.imports === null)
      throw new Error("not a version manifest");
  if (!value.modules.some((m) => m.url === value.entry)) throw new Error("the manifest has no module for its entry");
  return value as VersionManifest;
}

/**
 * The modules of `manifest` that must be made anew although modules made for an earlier
 * version are at hand: each that `reusable` refuses (its code or its imports changed, or
 * none was made), and every module that imports one of those, directly or not (a module
 * is linked to the very modules it imports).
 */
export function modulesToMake(manifest: VersionManifest, reusable: (record: ModuleRecord) => boolean): Set<string> {
  const importers = new Map<string, string[]>();
  for (const m of manifest.modules)
    for (const target of Object.values(m.imports)) {
      const list = importers.get(target);
      if (list) list.push(m.url);
      else importers.set(target, [m.url]);
    }
  const made = new Set<string>();
  const queue = manifest.modules.filter((m) => !reusable(m)).map((m) => m.url);
  while (queue.length > 0) {
    const url = queue.pop()!;
    if (made.has(url)) continue;
    made.add(url);
    queue.push(...(importers.get(url) ?? []));
  }
  return made;
}

/** What `specifier` in the module of `record` names: the manifest's answer, else as Node would resolve it from the source file. */
export function targetOf(record: ModuleRecord | undefined, specifier: string): string {
  if (record && Object.hasOwn(record.imports, specifier)) return record.imports[specifier]!;
  return record && /^\.{0,2}\//.test(specifier) ? new URL(specifier, record.url).href : specifier;
}
