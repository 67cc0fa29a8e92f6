import type Database from "better-sqlite3";
import { statSync, type Stats } from "node:fs";
import { CommitQueue } from "./commit-queue.js";
import { openStore, releaseHolder, StoreError } from "./open.js";
import { prepareStatements, type Statements, type TaskRow } from "./statements.js";
import type { InspectReads, LocalStore, Store, StoreWriter, StoredState } from "./store.js";

const LEVELS = ["OFF", "NORMAL", "FULL", "EXTRA"] as const;

/**
 * One SQLite file, held by this process alone. Reads are answered at once (behind promises,
 * for the interface's sake); writes go through the group commit, one transaction per turn of
 * the event loop.
 * @internal
 */
export class SqliteStore implements Store {
  readonly kind = "sqlite";
  readonly location: string;
  readonly local: LocalStore;
  readonly inspect: InspectReads;
  readonly shared = undefined;
  readonly #db: Database.Database;
  readonly #sql: Statements;
  readonly #commits: CommitQueue<StoreWriter>;
  #closed = false;

  constructor(path: string, options: { synchronous?: "FULL" | "NORMAL" | undefined } = {}) {
    this.location = path;
    this.#db = openStore(path, options.synchronous ? { synchronous: options.synchronous } : {});
    this.#sql = prepareStatements(this.#db);
    this.#commits = new CommitQueue(this.#db, this.#sql.writer, { check: sameFile(path) });
    const sql = this.#sql;
    const q = sql.inspect;
    this.inspect = {
      listSteps: async (uuid, maxBytes) => q.listSteps(uuid, maxBytes),
      history: async (uuid) => q.history(uuid),
      stateTypes: async () => q.stateTypes(),
      countInstances: async (type) => q.countInstances(type),
      instances: async (type, prefix, after, limit) => q.instances(type, prefix, after, limit),
      countStatus: async (status) => q.countStatus(status),
      versions: async (limit) => q.versions(limit),
    };
    this.local = {
      dueTasks: (after, until, limit) => sql.dueTasks(after, until, limit),
      recover: (stoppedAt, park, now) => {
        sql.interruptAttempts(stoppedAt);
        for (const p of park) sql.parkTask(p.taskUuid, p.reason, now);
      },
    };
  }

  get synchronous(): "FULL" | "NORMAL" | "OFF" | "EXTRA" {
    return LEVELS[this.#db.pragma("synchronous", { simple: true }) as number]!;
  }

  commit(op: (w: StoreWriter) => void, keys?: readonly string[]): Promise<void> {
    return this.#commits.commit(op, keys);
  }

  getTask(uuid: string): Promise<TaskRow | undefined> {
    return Promise.resolve(this.#sql.getTask(uuid));
  }

  getTasks(uuids: readonly string[]): Promise<TaskRow[]> {
    return Promise.resolve(uuids.map((u) => this.#sql.getTask(u)).filter((t): t is TaskRow => t !== undefined));
  }

  listAttempts(uuid: string) {
    return Promise.resolve(this.#sql.listAttempts(uuid));
  }

  getMemo(taskUuid: string, alias: string) {
    return Promise.resolve(this.#sql.getMemo(taskUuid, alias));
  }

  readState(type: string, id: string): Promise<StoredState | undefined> {
    const json = this.#sql.readState(type, id);
    return Promise.resolve(json === undefined ? undefined : { json, version: 0 });
  }

  getRecord(seed: string, alias: string) {
    return Promise.resolve(this.#sql.getRecord(seed, alias));
  }

  listTasks(filter: Parameters<Statements["listTasks"]>[0]) {
    return Promise.resolve(this.#sql.listTasks(filter));
  }

  tasksWithUuidPrefix(prefix: string, limit: number) {
    return Promise.resolve(this.#sql.tasksWithUuidPrefix(prefix, limit));
  }

  neighbourUuids(uuid: string) {
    return Promise.resolve(this.#sql.neighbourUuids(uuid));
  }

  lastVersion(): Promise<number> {
    return Promise.resolve(this.#sql.lastVersion());
  }

  async newVersion(atLeast: number, loadedAt: number): Promise<{ number: number; recorded: Promise<void> }> {
    // Only this process writes the store: the number taken now is still free when the write commits.
    const number = Math.max(atLeast, this.#sql.lastVersion() + 1);
    const recorded = this.#commits.commit((w) => w.recordVersion({ number, loaded_at: loadedAt, changed: "[]", build_ms: null, load_ms: null }));
    return { number, recorded };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#commits.flush();
    this.#db.close();
    releaseHolder(this.location);
  }
}

/**
 * A check that the file at `path` is still the store this runtime opened: a store deleted or
 * replaced under a running server would take every later write with it.
 */
function sameFile(path: string): () => void {
  const opened = statSync(path);
  let refused: StoreError | undefined;
  return () => {
    if (refused) throw refused;
    let now: Stats | undefined;
    try {
      now = statSync(path);
    } catch {
      now = undefined;
    }
    if (now?.ino === opened.ino && now.dev === opened.dev) return;
    refused = new StoreError(
      `The store file ${path} was ${now ? "replaced" : "deleted"} while this runtime had it open; no write is accepted any more. Stop the runtime and restore the file.`,
    );
    throw refused;
  };
}
