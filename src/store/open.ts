import Database from "better-sqlite3";
import { closeSync, mkdirSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import { MendError } from "../api/errors.js";
import { APPLICATION_ID, MIGRATIONS } from "./migrations.js";

export class StoreError extends MendError {
  constructor(message: string, options?: ErrorOptions) {
    super("STORE", message, options);
    this.name = "StoreError";
  }
}

/** Who holds a store open, written beside it so that a second opener can name the holder. */
export interface Holder {
  pid: number;
  command: string;
  since: string;
}

export interface OpenOptions {
  /** `FULL` survives a power loss, `NORMAL` a process crash. @defaultValue "FULL" */
  synchronous?: "FULL" | "NORMAL";
}

const HEADER = "SQLite format 3\0";

function holderPath(path: string): string {
  return `${path}.holder`;
}

/**
 * A process's command line without the values of its arguments (`cli.js serve --name
 * --admin-secret`): the holder file and the messages that name the holder must never show
 * a secret given as a flag. Words before the first flag are kept only if they look like
 * subcommands (a runtime child's argument may be a whole configuration).
 */
export function describeCommand(argv: readonly string[]): string {
  const [script, ...args] = argv;
  const words = [script ? basename(script) : "node"];
  let flags = false;
  for (const arg of args) {
    if (arg.startsWith("-")) {
      flags = true;
      // Only what looks like a flag's name: a secret that starts with a dash is a value too.
      const name = arg.split("=")[0]!;
      words.push(/^(?:--[a-z][a-z0-9-]*|-[a-z])$/i.test(name) ? name : "…");
    } else if (!flags) words.push(/^[a-z][a-z0-9-]{0,30}$/.test(arg) ? arg : "…"); // a subcommand, before any flag
  }
  return words.join(" ").replace(/(?: …)+/g, " …");
}

function describeHolder(path: string): string {
  try {
    const h = JSON.parse(readFileSync(holderPath(path), "utf8")) as Holder;
    // Masked again: a holder file written by an older mend may hold a whole command line.
    return `process ${Number(h.pid)} (${describeCommand(String(h.command).split(" "))}), since ${String(h.since)}`;
  } catch {
    return "another process";
  }
}

/** Whether an error (or its cause) is a write that failed because the disk is full. */
export function isDiskFull(error: unknown): boolean {
  for (let e = error, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const code = (e as { code?: unknown }).code;
    if (code === "SQLITE_FULL" || code === "ENOSPC") return true;
  }
  return false;
}

/** Refuses, before SQLite touches it, a file that is not an SQLite database. */
function checkHeader(path: string): void {
  let size: number;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw new StoreError(`${path} is not a mend store (not a file); it was left untouched.`);
    size = stat.size;
  } catch (e) {
    if (e instanceof StoreError) throw e;
    return;
  }
  if (size === 0) return;
  const fd = openSync(path, "r");
  const buf = Buffer.alloc(16);
  try {
    readSync(fd, buf, 0, 16, 0);
  } finally {
    closeSync(fd);
  }
  if (buf.toString("latin1") !== HEADER || size < 512)
    throw new StoreError(`${path} is not a mend store (not an SQLite database, or truncated); it was left untouched.`);
}

function isSqliteError(e: unknown, ...codes: string[]): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" && codes.some((c) => code.startsWith(c));
}

/**
 * Opens (creating if needed) the store at `path` and holds it exclusively until closed.
 * A file that is not a mend store, is damaged, or is held by another process is refused
 * with an error that says so, and is not written to.
 * @internal
 */
export function openStore(path: string, options: OpenOptions = {}): Database.Database {
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch (e) {
    throw new StoreError(`Cannot create the folder of the store ${path}: ${(e as Error).message}`, { cause: e });
  }
  checkHeader(path);
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: 0 });
  } catch (e) {
    throw new StoreError(`Cannot open the store ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    checkIdentity(db, path);
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${options.synchronous ?? "FULL"}`);
    db.pragma("foreign_keys = ON");
    migrate(db);
    // Taking a write lock now holds the store for as long as this connection lives.
    db.exec("BEGIN IMMEDIATE; COMMIT;");
  } catch (e) {
    db.close();
    if (e instanceof StoreError) throw e;
    if (isSqliteError(e, "SQLITE_BUSY", "SQLITE_LOCKED"))
      throw new StoreError(`The store ${path} is in use by ${describeHolder(path)}. Stop it first.`, { cause: e });
    // SQLITE_ERROR: a migration's SQL failed, so the store's tables are not what its schema
    // version says (its migration rolled back).
    if (isSqliteError(e, "SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_ERROR"))
      throw new StoreError(`The store ${path} is damaged (${(e as Error).message}); it was left untouched.`, { cause: e });
    if (isDiskFull(e)) throw new StoreError(`Cannot write the store ${path}: the disk is full.`, { cause: e });
    if (isSqliteError(e, "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR"))
      throw new StoreError(`Cannot write the store ${path}: ${(e as Error).message}`, { cause: e });
    throw e;
  }
  writeHolder(path);
  return db;
}

function checkIdentity(db: Database.Database, path: string): void {
  const appId = db.pragma("application_id", { simple: true }) as number;
  const version = db.pragma("user_version", { simple: true }) as number;
  const tables = (db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number }).n;
  // A new, empty database. One with a schema version of its own is another program's, even
  // with no tables: taken for new, it would be migrated from that version, skipping the first.
  if (appId === 0 && tables === 0 && version === 0) return;
  if (appId !== APPLICATION_ID)
    throw new StoreError(`${path} is an SQLite database but not a mend store; it was left untouched.`);
  if (version > MIGRATIONS.length)
    throw new StoreError(
      `The store ${path} has schema version ${version}, written by a newer mend (this one knows up to ${MIGRATIONS.length}); it was left untouched.`,
    );
}

function migrate(db: Database.Database): void {
  const run = db.transaction(() => {
    const from = db.pragma("user_version", { simple: true }) as number;
    for (let v = from; v < MIGRATIONS.length; v++) {
      db.pragma(`user_version = ${v + 1}`);
      db.exec(MIGRATIONS[v]!);
    }
    db.pragma(`application_id = ${APPLICATION_ID}`);
  });
  run.immediate();
}

function writeHolder(path: string): void {
  const holder: Holder = { pid: process.pid, command: describeCommand(process.argv.slice(1)), since: new Date().toISOString() };
  try {
    // A file left by a killed holder keeps its mode when written over: remove it, then create it for the owner only.
    rmSync(holderPath(path), { force: true });
    writeFileSync(holderPath(path), JSON.stringify(holder), { mode: 0o600, flag: "wx" });
  } catch {
    // Only used to name the holder in an error message.
  }
}

export function releaseHolder(path: string): void {
  rmSync(holderPath(path), { force: true });
}
