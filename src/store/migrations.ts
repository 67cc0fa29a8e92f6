/**
 * Numbered migrations. Each runs once, in order, inside one transaction that also moves
 * `user_version` to its number; a store whose `user_version` is higher than the last
 * number here was written by a newer mend and is refused.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: states, tasks and their attempts.
  `
  CREATE TABLE states (
    state_type TEXT NOT NULL,
    state_id   TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (state_type, state_id)
  ) WITHOUT ROWID;

  CREATE TABLE tasks (
    uuid         TEXT PRIMARY KEY,
    state_type   TEXT NOT NULL,
    state_id     TEXT NOT NULL,
    method       TEXT NOT NULL,
    request      TEXT NOT NULL,
    status       TEXT NOT NULL,
    due_at       INTEGER,           -- ms since the epoch; NULL while waiting for code
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    backoff_step INTEGER NOT NULL DEFAULT 0,
    response     TEXT,              -- JSON, when COMPLETED
    error        TEXT,              -- JSON of the declared error, when ABORTED
    last_error   TEXT,              -- one line on the latest failure
    parent_uuid  TEXT
  );
  CREATE INDEX tasks_unfinished ON tasks (status)
    WHERE status NOT IN ('COMPLETED', 'ABORTED', 'CANCELLED');
  CREATE INDEX tasks_by_state ON tasks (state_type, state_id);

  CREATE TABLE attempts (
    task_uuid     TEXT NOT NULL REFERENCES tasks (uuid) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    version       TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    ended_at      INTEGER,
    outcome       TEXT,             -- COMPLETED, ABORTED, FAILED, CANCELLED or INTERRUPTED
    error_class   TEXT,
    error_message TEXT,
    error_stack   TEXT,
    PRIMARY KEY (task_uuid, number)
  ) WITHOUT ROWID;
  `,
  // 2: the memo of workflows (a step per task and alias), and the iteration of a task's loop.
  `
  CREATE TABLE memos (
    task_uuid  TEXT NOT NULL REFERENCES tasks (uuid) ON DELETE CASCADE,
    alias      TEXT NOT NULL,
    kind       TEXT NOT NULL,       -- call, spawn, atLeastOnce, atMostOnce, until or loop
    step       TEXT NOT NULL,       -- what the alias stands for, e.g. Account('alice').charge()
    status     TEXT NOT NULL,       -- started, completed or failed
    value      TEXT,                -- JSON: a result, a declared error, a child's task id, a loop's next iteration
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (task_uuid, alias)
  ) WITHOUT ROWID;

  ALTER TABLE tasks ADD COLUMN iteration INTEGER NOT NULL DEFAULT 0;
  `,
  // 3: waiting work stays in the store: the engine reads what is due next by this index
  // (every unfinished task that can run has a due time; a finished one has none), lists
  // filter by status, state type or method newest first, and opening the store finds the
  // attempts that were running without reading the others.
  `
  CREATE INDEX tasks_due ON tasks (due_at, uuid) WHERE due_at IS NOT NULL;
  DROP INDEX tasks_unfinished;
  CREATE INDEX tasks_by_status ON tasks (status);
  CREATE INDEX tasks_by_type ON tasks (state_type);
  CREATE INDEX tasks_by_method ON tasks (method);
  CREATE INDEX attempts_open ON attempts (task_uuid) WHERE ended_at IS NULL;
  `,
  // 4: the code versions \`mend dev run\` loaded, numbered per store across runs.
  `
  CREATE TABLE versions (
    number    INTEGER PRIMARY KEY,  -- the N of vN
    loaded_at INTEGER NOT NULL,     -- ms since the epoch
    changed   TEXT NOT NULL,        -- JSON array of the files whose saves led to it
    build_ms  REAL,
    load_ms   REAL
  );
  `,
  // 5: calls made idempotently from outside (`.idempotently()` on an ExternalContext or a
  // runtime context, an HTTP idempotency key, the calls of `initialize`): one row per seed
  // and alias, kept with the store, so a repeat gets the recorded result.
  `
  CREATE TABLE idempotency (
    seed       TEXT NOT NULL,
    alias      TEXT NOT NULL,
    kind       TEXT NOT NULL,       -- call, spawn or initialize
    step       TEXT NOT NULL,       -- what the key stands for, e.g. Account('alice').deposit()
    request    TEXT NOT NULL,       -- JSON of the validated request: a repeat must ask the same
    status     TEXT NOT NULL,       -- completed or failed (a declared error)
    value      TEXT,                -- JSON: the response, { error, message }, or a task id
    created_at INTEGER NOT NULL,
    PRIMARY KEY (seed, alias)
  ) WITHOUT ROWID;
  `,
  // 6: the dashboard. Each workflow step's place in the order its task first recorded them
  // (rerunning from a step forgets the ones recorded at or after it; steps recorded before
  // this column have none and sort first), a task's children by their parent, and what
  // operators did to a task (a rerun from a step: who, when, which steps).
  `
  ALTER TABLE memos ADD COLUMN seq INTEGER;
  CREATE INDEX memos_order ON memos (task_uuid, seq);
  CREATE INDEX tasks_by_parent ON tasks (parent_uuid) WHERE parent_uuid IS NOT NULL;
  CREATE TABLE task_history (
    task_uuid TEXT NOT NULL REFERENCES tasks (uuid) ON DELETE CASCADE,
    at        INTEGER NOT NULL,     -- ms since the epoch
    action    TEXT NOT NULL,        -- rerun
    by        TEXT NOT NULL,        -- who asked: dashboard, cli or api
    detail    TEXT NOT NULL         -- JSON, e.g. { fromStep, forgotten: [aliases] }
  );
  CREATE INDEX task_history_by_task ON task_history (task_uuid);
  `,
];

/** 'mend' in ASCII: marks an SQLite file as a mend store. */
export const APPLICATION_ID = 0x6d656e64;
