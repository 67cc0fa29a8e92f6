import type { StateTypeDefinition } from "../api/define.js";
import { MendError } from "../api/errors.js";
import type { Statements } from "../store/statements.js";
import { z } from "zod";
import { DEFAULT_MAX_VALUE_BYTES, toStoredJson } from "./json.js";

export function stateKey(type: string, id: string): string {
  return `${type}\u0000${id}`;
}

export function describeState(type: string, id: string): string {
  return `${type}('${id}')`;
}

/**
 * State instances as the store holds them, plus the writes that are committed in memory
 * but not yet durable (group commit): a writer sees those, a reader sees only what is
 * durable.
 * @internal
 */
export class States {
  #pending = new Map<string, { json: string; gen: number }>();
  #gen = 0;
  /** Per instance, moves on each time its pending write is dropped: a writer that read it before must not commit. */
  #epochs = new Map<string, number>();
  /** Told once a write to their instance is durable (a workflow's `until` waiting for a change). */
  #watchers = new Map<string, Set<() => void>>();

  constructor(
    private readonly sql: Statements,
    private readonly maxValueBytes = DEFAULT_MAX_VALUE_BYTES,
  ) {}

  /** Durable state, for readers. */
  committed(type: StateTypeDefinition, id: string): Record<string, unknown> {
    return this.#parse(type, id, this.sql.readState(type.name, id));
  }

  /** The durable state's JSON; undefined if the instance was never written. */
  committedJson(type: string, id: string): string | undefined {
    return this.sql.readState(type, id);
  }

  /** The newest state, for a writer that holds the instance's lock. */
  latest(type: StateTypeDefinition, id: string): Record<string, unknown> {
    return this.#parse(type, id, this.latestJson(type.name, id));
  }

  latestJson(type: string, id: string): string | undefined {
    return this.#pending.get(stateKey(type, id))?.json ?? this.sql.readState(type, id);
  }

  parse(type: StateTypeDefinition, id: string, json: string | undefined): Record<string, unknown> {
    return this.#parse(type, id, json);
  }

  /** Validates a state a writer left and serialises it. */
  serialise(type: StateTypeDefinition, id: string, state: unknown, method: string): string {
    const parsed = type.state.safeParse(state);
    if (!parsed.success)
      throw new MendError(
        "INVALID_STATE",
        `${type.name}.${method} left the state of ${describeState(type.name, id)} not matching its schema: ${z.prettifyError(parsed.error)}`,
      );
    return toStoredJson(parsed.data, `The state of ${describeState(type.name, id)}`, this.maxValueBytes) ?? "{}";
  }

  /** Records a write that is on its way to disk; call the result once it is there. */
  setPending(type: string, id: string, json: string): () => void {
    const key = stateKey(type, id);
    const gen = ++this.#gen;
    this.#pending.set(key, { json, gen });
    return () => {
      if (this.#pending.get(key)?.gen === gen) this.#pending.delete(key);
      if (this.#watchers.size > 0) this.#changed(key);
    };
  }

  /** Calls `fn` after each durable write to the instance `key`, until the result is called. */
  watch(key: string, fn: () => void): () => void {
    let set = this.#watchers.get(key);
    if (!set) this.#watchers.set(key, (set = new Set()));
    const own = set;
    own.add(fn);
    return () => {
      own.delete(fn);
      if (own.size === 0 && this.#watchers.get(key) === own) this.#watchers.delete(key);
    };
  }

  #changed(key: string): void {
    const set = this.#watchers.get(key);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn();
      } catch (e) {
        process.emitWarning(`A watcher of a state write threw: ${String(e)}`);
      }
    }
  }

  epochOf(key: string): number {
    return this.#epochs.get(key) ?? 0;
  }

  /** After a failed commit: forget the writes to these instances that are not yet durable. */
  dropPending(keys: Iterable<string>): void {
    for (const key of keys) {
      this.#pending.delete(key);
      this.#epochs.set(key, this.epochOf(key) + 1);
    }
  }

  #parse(type: StateTypeDefinition, id: string, json: string | undefined): Record<string, unknown> {
    const raw: unknown = json === undefined ? {} : JSON.parse(json);
    const parsed = type.state.safeParse(raw);
    if (!parsed.success)
      throw new MendError(
        "INVALID_STATE",
        `The stored state of ${describeState(type.name, id)} does not match the state schema of this code: ${z.prettifyError(parsed.error)}`,
      );
    return parsed.data as Record<string, unknown>;
  }
}
