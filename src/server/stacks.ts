// Stack traces of processes that load apps (`mend serve`, the runtime of `mend dev run`):
// frames of a loaded version (a bundle, or one module per source file) are mapped to the
// `.ts` lines through its source maps, held here as long as that version's code can run
// (Node's own cache drops a map when it drops the module object, and knows nothing of vm
// modules); mend's own frames are left out so that the user's callers fit; and more
// frames are kept than V8's 10.
import { findSourceMap, SourceMap } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Frames V8 keeps per error in these processes: a deep chain of the user's calls plus mend's. */
export const STACK_TRACE_LIMIT = 50;

/** Versions whose maps stay even once nothing of theirs is reachable: errors are formatted lazily. */
const RECENT = 4;

interface Entry {
  url: string;
  text: string;
  map?: SourceMap | null;
}

/** A version's maps: one per module of the version (one for a bundle), held together. */
interface Group {
  urls: readonly string[];
  anchors: number;
}

const entries = new Map<string, Entry>();
const groups = new Map<string, Group>();
const recent: string[] = [];
const finalizer = new FinalizationRegistry<string>((key) => {
  const group = groups.get(key);
  if (!group) return;
  group.anchors--;
  if (group.anchors <= 0) prune();
});

/** Drops the groups no longer recent nor anchored, and every map that no group left holds. */
function prune(): void {
  const live = new Set<string>();
  for (const [key, group] of groups) {
    if (group.anchors > 0 || recent.includes(key)) for (const url of group.urls) live.add(url);
    else groups.delete(key);
  }
  for (const url of entries.keys()) if (!live.has(url)) entries.delete(url);
}

/** A path or file URL as a URL, the form V8 names ES modules by. */
function toUrl(file: string): string {
  return file.startsWith("/") ? pathToFileURL(file).href : file;
}

/**
 * Maps the frames of a version's modules. `urls` names every module of the version (as
 * V8 names their frames); `maps` gives the text of each map not registered yet (a module
 * unchanged since an earlier version shares that version's map). The maps stay while the
 * version is one of the last few registered, or while keepSourceMapsWhile's anchors live.
 */
export function registerSourceMaps(version: string, urls: readonly string[], maps: Iterable<readonly [url: string, text: string]>): void {
  for (const [url, text] of maps) entries.set(url, { url, text });
  groups.set(version, { urls, anchors: groups.get(version)?.anchors ?? 0 });
  const at = recent.indexOf(version);
  if (at >= 0) recent.splice(at, 1);
  recent.push(version);
  if (recent.length > RECENT) recent.shift();
  prune();
}

/** Maps frames of `bundle` (its path or URL) through `mapText`: a version of one module. */
export function registerSourceMap(bundle: string, mapText: string): void {
  const url = toUrl(bundle);
  registerSourceMaps(url, [url], [[url, mapText]]);
}

/**
 * Keeps the maps of `version` for as long as any of `anchors` (the loaded version's
 * Application and method implementations, which the runtime holds while the version can
 * run) is alive.
 */
export function keepSourceMapsWhile(version: string, anchors: readonly object[]): void {
  const group = groups.get(version);
  if (!group || anchors.length === 0) return;
  group.anchors += anchors.length;
  for (const anchor of anchors) finalizer.register(anchor, version);
}

/** keepSourceMapsWhile for a bundle registered with registerSourceMap. */
export function keepSourceMapWhile(bundle: string, anchors: readonly object[]): void {
  keepSourceMapsWhile(toUrl(bundle), anchors);
}

/** Whether frames of `url` are mapped now (its map need not be read again). */
export function hasSourceMap(url: string): boolean {
  return entries.has(url);
}

/** The modules whose maps are held now. */
export function registeredMaps(): string[] {
  return [...entries.keys()];
}

function mapOf(file: string | undefined | null): SourceMap | undefined {
  if (!file) return undefined;
  const entry = entries.get(toUrl(file));
  if (!entry) {
    try {
      return findSourceMap(file);
    } catch {
      return undefined;
    }
  }
  if (entry.map === undefined) entry.map = parseMap(entry.text, entry.url);
  return entry.map ?? undefined;
}

/** A source map with its sources made absolute URLs, relative to the bundle. */
export function parseMap(text: string, bundleUrl: string): SourceMap | null {
  try {
    const payload = JSON.parse(text) as { sources?: string[]; sourceRoot?: string };
    const root = payload.sourceRoot ? new URL(payload.sourceRoot.replace(/\/?$/, "/"), bundleUrl).href : bundleUrl;
    payload.sources = (payload.sources ?? []).map((s) => new URL(s, root).href);
    delete payload.sourceRoot;
    return new SourceMap(payload as ConstructorParameters<typeof SourceMap>[0]);
  } catch {
    return null;
  }
}

const OWN_URL = new URL(".", import.meta.url).href;
const OWN_PATH = OWN_URL.startsWith("file:") ? fileURLToPath(OWN_URL) : OWN_URL;

/** A frame of mend itself or of Node's internals: never what the user wants to see. */
export function isInternalFile(file: string, own: readonly string[] = [OWN_URL, OWN_PATH]): boolean {
  return file.startsWith("node:internal/") || file.startsWith("node:async_hooks") || own.some((o) => file.startsWith(o));
}

/**
 * Which frames to keep, given each frame's file (`undefined` for builtins such as
 * `Array.map`). Internal frames go; a builtin goes with the frame that called it (or, at
 * the bottom, the one it called); if no frame of the user's would be left (an error of
 * mend's own), every frame stays.
 */
export function framesToKeep(files: readonly (string | undefined)[], internal: (file: string) => boolean = isInternalFile): boolean[] {
  const own = files.map((f) => (f ? !internal(f) : undefined));
  const keep = own.map((k, i) => k ?? callerOf(own, i) ?? calleeOf(own, i) ?? true);
  return own.some((k) => k === true) ? keep : keep.map(() => true);
}

/** Whether the nearest frame below `i` that has a file is kept (V8 lists callers below callees). */
function callerOf(own: readonly (boolean | undefined)[], i: number): boolean | undefined {
  for (let j = i + 1; j < own.length; j++) if (own[j] !== undefined) return own[j];
  return undefined;
}

function calleeOf(own: readonly (boolean | undefined)[], i: number): boolean | undefined {
  for (let j = i - 1; j >= 0; j--) if (own[j] !== undefined) return own[j];
  return undefined;
}

type CallSiteInfo = NodeJS.CallSite;

/** One frame mapped to its source, in the form Node prints with --enable-source-maps. */
function mappedFrame(map: SourceMap, site: CallSiteInfo, caller: CallSiteInfo | undefined): string | undefined {
  const line = site.getLineNumber();
  const column = site.getColumnNumber();
  if (line === null || column === null) return undefined;
  const entry = map.findEntry(line - 1, column - 1) as Partial<{ originalSource: string; originalLine: number; originalColumn: number }>;
  if (entry.originalSource === undefined || entry.originalLine === undefined || entry.originalColumn === undefined) return undefined;
  const source = entry.originalSource.startsWith("file://") ? fileURLToPath(entry.originalSource) : entry.originalSource;
  const fnName = site.getFunctionName() ?? site.getMethodName();
  const prefix = site.isAsync() ? "async " : site.isConstructor() ? "new " : "";
  const typeName = site.getTypeName();
  const generated = `${typeName !== null && typeName !== "global" ? `${typeName}.` : ""}${fnName || "<anonymous>"}`;
  const original = originalName(map, site, caller);
  const name = original && original !== generated ? original : generated;
  return `${prefix}${name} (${source}:${entry.originalLine + 1}:${entry.originalColumn + 1})`;
}

/** The function's name before bundling (esbuild renames clashing top-level names). */
function originalName(map: SourceMap, site: CallSiteInfo, caller: CallSiteInfo | undefined): string | undefined {
  const line = site.getEnclosingLineNumber();
  const column = site.getEnclosingColumnNumber();
  if (line && column) {
    const { name } = map.findEntry(line - 1, column - 1) as { name?: string };
    if (name) return name;
  }
  if (caller && caller.getFileName() === site.getFileName()) {
    const l = caller.getLineNumber();
    const c = caller.getColumnNumber();
    if (l !== null && c !== null) return (map.findEntry(l - 1, c - 1) as { name?: string }).name;
  }
  return undefined;
}

/** Node marks its own errors with a symbol, on the error or one of its prototypes. */
function isNodeError(error: unknown): boolean {
  for (let o = error as object | null; o; o = Object.getPrototypeOf(o) as object | null)
    if (Object.getOwnPropertySymbols(o).some((s) => s.description === "kIsNodeError")) return true;
  return false;
}

function header(error: unknown): string {
  try {
    const e = error as { name?: unknown; code?: unknown; message?: unknown };
    // Node's own errors print their code: `TypeError [ERR_INVALID_ARG_TYPE]: …`.
    if (isNodeError(error)) return `${String(e.name)} [${String(e.code)}]: ${String(e.message)}`;
    return Error.prototype.toString.call(error);
  } catch {
    return "Error";
  }
}

function fileOf(site: NodeJS.CallSite): string | undefined {
  return site.getFileName() ?? site.getEvalOrigin() ?? undefined;
}

/** `Error.prepareStackTrace` for these processes. */
export function prepareStackTrace(error: unknown, sites: NodeJS.CallSite[]): string {
  const head = header(error);
  try {
    const files = sites.map((s) => s.getFileName() ?? undefined);
    const keep = framesToKeep(files);
    let out = head;
    for (let i = 0; i < sites.length; i++) {
      if (!keep[i]) continue;
      const site = sites[i]!;
      const map = mapOf(fileOf(site));
      let frame: string | undefined;
      if (map) {
        try {
          frame = mappedFrame(map, site, sites[i + 1]);
        } catch {
          frame = undefined;
        }
      }
      out += `\n    at ${frame ?? String(site)}`;
    }
    return out;
  } catch {
    return head + sites.map((s) => `\n    at ${String(s)}`).join("");
  }
}

let installed = false;

/** Installs the mapping and the frame limit for the whole process; idempotent. */
export function installStackTraces(): void {
  if (installed) return;
  installed = true;
  Error.stackTraceLimit = Math.max(Number(Error.stackTraceLimit) || 0, STACK_TRACE_LIMIT);
  Error.prepareStackTrace = prepareStackTrace;
  // Lets findSourceMap map frames of packages that ship source maps, as Node would.
  process.setSourceMapsEnabled(true);
}
