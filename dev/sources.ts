import { watch, type FSWatcher } from "chokidar";
import { statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import pc from "picocolors";
import picomatch from "picomatch";

/**
 * The files a save in which rebuilds the app: what the last good build read, plus the
 * `--watch` globs; before the first good build, anything beside the entry.
 */
export class Sources {
  readonly #watcher: FSWatcher;
  readonly #globs: picomatch.Matcher[];
  #watched = new Set<string>();
  /** What each file's mtime was when a build started: chokidar drops a change within 50 ms of the previous one. */
  readonly #mtimes = new Map<string, number>();

  constructor(
    private readonly entry: string,
    globs: string[],
    /** The state folder, never watched. */
    stateDirectory: string,
    private readonly onChange: (path: string) => void,
    private readonly built: () => boolean,
  ) {
    this.#globs = globs.map((g) => picomatch(resolve(g)));
    this.#watcher = watch([dirname(entry), ...globs.map((g) => resolve(picomatch.scan(g).base || "."))], {
      ignoreInitial: true,
      ignored: (p) => p.includes("/node_modules/") || p.startsWith(stateDirectory) || p.includes("/.git/"),
    });
    const debug = process.env.MEND_DEBUG ? (line: string) => console.error(pc.dim(`[debug] ${line}`)) : () => {};
    this.#watcher.on("all", (event, path) => {
      debug(`${event} ${path}`);
      if (event === "addDir" || event === "unlinkDir") return;
      const abs = resolve(path);
      if (this.#relevant(abs)) onChange(abs);
    });
  }

  ready(): Promise<void> {
    return new Promise((resolve) => this.#watcher.once("ready", () => resolve()));
  }

  #relevant(abs: string): boolean {
    return this.#watched.has(abs) || this.#globs.some((m) => m(abs)) || (!this.built() && abs.startsWith(dirname(this.entry)));
  }

  /** A build starts: remember what it sees. */
  building(): void {
    for (const p of this.#watched) this.#mtimes.set(p, mtimeOf(p));
  }

  /** A build ended: a file saved during it whose event chokidar dropped is rebuilt again. */
  buildEnded(inputs?: string[]): void {
    setTimeout(() => {
      for (const [p, seen] of this.#mtimes) if (mtimeOf(p) !== seen) this.onChange(p);
    }, 60).unref();
    if (!inputs) return;
    const next = new Set(inputs);
    const added = [...next].filter((p) => !this.#watched.has(p) && !p.startsWith(dirname(this.entry)));
    if (added.length > 0) this.#watcher.add(added);
    this.#watched = next;
  }

  close(): Promise<void> {
    return this.#watcher.close();
  }
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}
