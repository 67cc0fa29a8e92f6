import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MendError } from "../src/api/errors.js";

/** The watcher's claim on a state directory, for its whole life (also while its runtime restarts). */
export const WATCHER_HOLDER = "dev-run.holder";

export interface HolderFile {
  pid: number;
  command: string;
  since: string;
}

export type HolderState =
  | { state: "none" }
  | { state: "held"; holder: HolderFile }
  /** The file is there but says nothing we can use (empty, cut short, not ours). */
  | { state: "unreadable"; why: string };

/** Reads a holder file (the store's, or the watcher's): who holds the state, if anyone can tell. */
export function readHolder(path: string): HolderState {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return { state: "none" };
    return { state: "unreadable", why: `cannot be read (${(e as Error).message})` };
  }
  if (text.trim() === "") return { state: "unreadable", why: "is empty" };
  try {
    const h = JSON.parse(text) as Partial<HolderFile>;
    if (typeof h?.pid === "number" && Number.isInteger(h.pid) && h.pid > 0)
      return { state: "held", holder: { pid: h.pid, command: String(h.command ?? ""), since: String(h.since ?? "") } };
  } catch {
    // not JSON: said below
  }
  return { state: "unreadable", why: "is not a holder file (no process id in it)" };
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === "EPERM";
  }
}

/**
 * Holds `directory` for this process until the returned release is called: a second
 * watcher, and `mend dev expunge`, refuse meanwhile. A holder that is gone is taken over.
 */
export function holdStateDirectory(directory: string, name: string): () => void {
  const path = join(directory, WATCHER_HOLDER);
  const mine: HolderFile = { pid: process.pid, command: "mend dev run", since: new Date().toISOString() };
  // Written whole to a file of our own, then linked into place: linking fails if the name
  // exists, so two watchers starting at once cannot both win, and no one reads it half written.
  const own = `${path}.${process.pid}`;
  try {
    mkdirSync(directory, { recursive: true });
    writeFileSync(own, JSON.stringify(mine), { mode: 0o600 });
  } catch (e) {
    throw new MendError("STATE_DIRECTORY", `Cannot write the state folder ${directory}: ${(e as Error).message}`, { cause: e });
  }
  try {
    for (let tries = 0; ; tries++) {
      try {
        linkSync(own, path);
        break;
      } catch (e) {
        if ((e as { code?: string }).code !== "EEXIST" || tries > 0) throw e;
      }
      const other = readHolder(path);
      if (other.state === "held" && other.holder.pid !== process.pid && isAlive(other.holder.pid))
        throw new MendError("IN_USE", `The state of ${name} is in use by mend dev run (process ${other.holder.pid}, since ${other.holder.since}); stop it first.`);
      rmSync(path, { force: true }); // its watcher is gone
    }
  } finally {
    rmSync(own, { force: true });
  }
  return () => {
    const now = readHolder(path);
    if (now.state === "held" && now.holder.pid === process.pid) rmSync(path, { force: true });
  };
}
