/**
 * Numbered migrations of a PostgreSQL store. Each runs once, in order, in the transaction
 * that opens the store (under an advisory lock, so that servers that start at the same
 * moment apply it once); `mend_store.schema_version` holds the number of the last one, and a
 * store whose number is higher than the last one here was written by a newer mend and is
 * refused. The tables are those of an SQLite store (src/store/migrations.ts) and what several
 * servers need besides: who runs a task and until when (its lease), the version of each
 * state (what a write is checked against), the servers, and instance locks.
 */
export const PG_MIGRATIONS: readonly string[] = [
  // 1: the whole store, as an SQLite store is at its migration 5, and what several servers share.
  `
  CREATE TABLE mend_store (
    id             integer PRIMARY KEY CHECK (id = 1),
    application_id bigint NOT NULL,
    schema_version integer NOT NULL
  );

  CREATE TABLE states (
    state_type text NOT NULL,
    state_id   text NOT NULL,
    state      text NOT NULL,
    version    bigint NOT NULL,       -- each write adds one; a write computed from another version is refused
    PRIMARY KEY (state_type, state_id)
  );

  CREATE TABLE tasks (
    seq          bigserial NOT NULL UNIQUE,  -- creation order: lists, newest first, and their cursors
    uuid         text COLLATE "C" PRIMARY KEY,
    state_type   text NOT NULL,
    state_id     text NOT NULL,
    method       text NOT NULL,
    request      text NOT NULL,
    status       text NOT NULL,
    due_at       bigint,           -- ms since the epoch; while STARTED, when its lease ends; NULL while waiting for code or finished
    created_at   bigint NOT NULL,
    updated_at   bigint NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    backoff_step integer NOT NULL DEFAULT 0,
    response     text,
    error        text,
    last_error   text,
    parent_uuid  text COLLATE "C",
    iteration    integer NOT NULL DEFAULT 0,
    owner        text              -- the server running it, while STARTED
  );
  CREATE INDEX tasks_due ON tasks (due_at, uuid) WHERE due_at IS NOT NULL;
  CREATE INDEX tasks_by_status ON tasks (status, seq);
  CREATE INDEX tasks_by_type ON tasks (state_type, seq);
  CREATE INDEX tasks_by_method ON tasks (method, seq);
  CREATE INDEX tasks_by_state ON tasks (state_type, state_id, seq);
  CREATE INDEX tasks_by_owner ON tasks (owner) WHERE owner IS NOT NULL;

  CREATE TABLE attempts (
    task_uuid     text COLLATE "C" NOT NULL REFERENCES tasks (uuid) ON DELETE CASCADE,
    number        integer NOT NULL,
    version       text NOT NULL,
    started_at    bigint NOT NULL,
    ended_at      bigint,
    outcome       text,
    error_class   text,
    error_message text,
    error_stack   text,
    PRIMARY KEY (task_uuid, number)
  );
  CREATE INDEX attempts_open ON attempts (task_uuid) WHERE ended_at IS NULL;

  CREATE TABLE memos (
    task_uuid  text COLLATE "C" NOT NULL REFERENCES tasks (uuid) ON DELETE CASCADE,
    alias      text NOT NULL,
    kind       text NOT NULL,
    step       text NOT NULL,
    status     text NOT NULL,
    value      text,
    updated_at bigint NOT NULL,
    PRIMARY KEY (task_uuid, alias)
  );

  CREATE TABLE versions (
    number    integer PRIMARY KEY,
    loaded_at bigint NOT NULL,
    changed   text NOT NULL,
    build_ms  double precision,
    load_ms   double precision
  );

  CREATE TABLE idempotency (
    seed       text NOT NULL,
    alias      text NOT NULL,
    kind       text NOT NULL,
    step       text NOT NULL,
    request    text NOT NULL,
    status     text NOT NULL,
    value      text,
    created_at bigint NOT NULL,
    PRIMARY KEY (seed, alias)
  );

  -- The servers on this store, each with the methods of its code (type, byte 1, method): a task
  -- whose method no live server has waits for code; one that some server has waits for it.
  CREATE TABLE servers (
    id           text PRIMARY KEY,
    version      text NOT NULL,
    methods      text[] NOT NULL,
    started_at   bigint NOT NULL,
    heartbeat_at bigint NOT NULL
  );

  -- Writers of one instance run one at a time across servers: a server holds an instance's
  -- lock while its writers run, under a lease. Not logged: after a crash of PostgreSQL every
  -- lock is gone, and the state versions still refuse a write computed from an old state.
  CREATE UNLOGGED TABLE instance_locks (
    state_type text NOT NULL,
    state_id   text NOT NULL,
    owner      text NOT NULL,
    until      bigint NOT NULL,
    PRIMARY KEY (state_type, state_id)
  );
  CREATE INDEX instance_locks_by_owner ON instance_locks (owner);
  `,
  // 2: the dashboard, as an SQLite store's migration 6: each step's place in the order its
  // task first recorded them, a task's children by their parent, and what operators did to a
  // task.
  `
  ALTER TABLE memos ADD COLUMN seq integer;
  CREATE INDEX memos_order ON memos (task_uuid, seq);
  CREATE INDEX tasks_by_parent ON tasks (parent_uuid) WHERE parent_uuid IS NOT NULL;
  CREATE TABLE task_history (
    id        bigserial PRIMARY KEY,
    task_uuid text COLLATE "C" NOT NULL REFERENCES tasks (uuid) ON DELETE CASCADE,
    at        bigint NOT NULL,
    action    text NOT NULL,
    by        text NOT NULL,
    detail    text NOT NULL
  );
  CREATE INDEX task_history_by_task ON task_history (task_uuid);
  `,
];

/** 'mend' in ASCII: marks a PostgreSQL schema as a mend store (the same number as SQLite's application_id). */
export const PG_APPLICATION_ID = 0x6d656e64;
