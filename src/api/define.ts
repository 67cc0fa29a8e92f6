import { z } from "zod";
import { makeAbortedClass, MendError, type Aborted, type AbortedClass } from "./errors.js";
import type { Context, Kind, Outcome, ReaderContext, TransactionContext, WorkflowContext, WriterContext } from "./context.js";
import type { Authorizer } from "./authorization.js";
import type { TaskId, TaskOptions } from "./task-id.js";
import type { Task } from "./task.js";
import type { RetryPolicy } from "../runtime/backoff.js";
import { durationMs, type Duration } from "./workflow.js";
import { makeStateType } from "./refs.js";

// ---------------------------------------------------------------------------
// The declaration, as the user writes it.

type Shape = z.ZodRawShape;
/** A schema, or the shape of an object schema (`{ amount: z.number() }`). */
export type SchemaLike = z.ZodType | Shape;

export interface MethodDeclaration {
  kind: Kind;
  /**
   * `factory: {}` makes a writer or transaction a constructor (Reboot's factories): it creates
   * the instance, `const [ref, response] = await Account.open(ctx, id?, request)`. On a type
   * with constructors, every other method needs a constructed instance.
   */
  factory?: Record<string, never>;
  request?: SchemaLike;
  response?: SchemaLike;
  /** The declared errors this method may end with, each an object with a `type` literal. */
  errors?: readonly z.ZodType<{ type: string }>[];
  /** Backoff for this method's tasks; overrides the application's. */
  retry?: Partial<RetryPolicy>;
  /**
   * How long one call (or one attempt of a task) may run: then its `ctx.signal` aborts, its
   * locks are let go, and it fails with DeadlineExceeded. Overrides the application's.
   * @defaultValue `{ secs: 60 }` for readers, writers and transactions; none for workflows
   */
  timeout?: Duration;
}

export interface StateTypeDeclaration {
  state: Shape;
  methods: Record<string, MethodDeclaration>;
}

const METHOD_KEYS: readonly (keyof MethodDeclaration)[] = ["kind", "factory", "request", "response", "errors", "retry", "timeout"];
const STATE_TYPE_KEYS: readonly (keyof StateTypeDeclaration)[] = ["state", "methods"];

/** Keys a declaration may not have: each one's type is `never`, so a misspelt key is a type error. */
type NoExtraKeys<T, Allowed> = { [K in Exclude<keyof T, keyof Allowed>]: never };
type CheckedApi<D> = {
  [N in keyof D]: NoExtraKeys<D[N], StateTypeDeclaration> &
    (D[N] extends { methods: infer Ms } ? { methods: { [M in keyof Ms]: NoExtraKeys<Ms[M], MethodDeclaration> } } : unknown);
};

// ---------------------------------------------------------------------------
// Types inferred from the declaration.

type ToSchema<S> = S extends z.ZodType ? S : S extends Shape ? z.ZodObject<S> : z.ZodObject<{}>;
type In<S> = z.input<ToSchema<S>>;
type Out<S> = z.output<ToSchema<S>>;

type StateOfDeclaration<T extends StateTypeDeclaration> = z.output<z.ZodObject<T["state"]>>;
type RequestIn<M extends MethodDeclaration> = In<M["request"]>;
type RequestOut<M extends MethodDeclaration> = Out<M["request"]>;
type ResponseIn<M extends MethodDeclaration> = M["response"] extends SchemaLike ? In<M["response"]> : void;
type ResponseOut<M extends MethodDeclaration> = M["response"] extends SchemaLike ? Out<M["response"]> : void;
export type DeclaredError<M extends MethodDeclaration> = M["errors"] extends readonly (infer E)[]
  ? E extends z.ZodType
    ? z.output<E>
    : never
  : never;

type Awaitable<T> = T | Promise<T>;

/** The signature a servicer must give each method, by kind. */
export type MethodImpl<T extends StateTypeDeclaration, M extends MethodDeclaration> = M["kind"] extends "reader"
  ? (ctx: ReaderContext, state: Readonly<StateOfDeclaration<T>>, request: RequestOut<M>) => Awaitable<ResponseIn<M>>
  : M["kind"] extends "writer"
    ? (ctx: WriterContext, state: StateOfDeclaration<T>, request: RequestOut<M>) => Awaitable<ResponseIn<M>>
    : M["kind"] extends "transaction"
      ? (ctx: TransactionContext, state: StateOfDeclaration<T>, request: RequestOut<M>) => Awaitable<ResponseIn<M>>
      : (ctx: WorkflowContext, request: RequestOut<M>) => Awaitable<ResponseIn<M>>;

export type ServicerImpl<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"]]: MethodImpl<T, T["methods"][K]>;
} & {
  /** Decides who may call this type's methods from outside the application; none: everyone may (as before). */
  authorizer?: Authorizer;
};

type Args<M extends MethodDeclaration> = {} extends RequestIn<M> ? [request?: RequestIn<M>] : [request: RequestIn<M>];

type CallMethods<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"]]: (ctx: Context, ...args: Args<T["methods"][K]>) => Promise<ResponseOut<T["methods"][K]>>;
};
type ScheduleMethods<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"]]: (ctx: Context, ...args: Args<T["methods"][K]>) => Promise<TaskId>;
};
type SpawnMethods<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"]]: (
    ctx: Context,
    ...args: Args<T["methods"][K]>
  ) => Promise<{ task: Task<ResponseOut<T["methods"][K]>> }>;
};

/** A typed reference to one state instance. */
export type Ref<T extends StateTypeDeclaration> = CallMethods<T> & {
  readonly stateId: string;
  /** From a writer or transaction: the task exists only if the caller commits. */
  schedule(options?: TaskOptions): ScheduleMethods<T>;
  /** From a workflow or from outside: starts a task and gives an awaitable handle. */
  spawn(options?: TaskOptions): SpawnMethods<T>;
  /**
   * The next call runs once per key. In a workflow: once per workflow (per loop iteration
   * inside `ctx.loop`), `alias` naming it. From outside: once per context seed and alias (no
   * alias: a key from the order of the context's calls); a repeat gets the recorded result.
   */
  idempotently(alias?: string): Ref<T>;
  /** In a workflow: once per workflow, also inside a loop. */
  perWorkflow(alias: string): Ref<T>;
  /** In a workflow: every time, not memoised. */
  always(): Ref<T>;
  /** In a workflow: the instance's state, memoised as a step (unless `.always()`). */
  read(ctx: Context): Promise<StateOfDeclaration<T>>;
  /**
   * In a workflow: an inline writer. `fn` changes the state, atomically with its instance's
   * lock, once per key (`.idempotently(alias)`, or the n-th write of the instance); its
   * return value is recorded and given back to a retry.
   */
  write<R>(ctx: Context, fn: (state: StateOfDeclaration<T>) => R | Promise<R>): Promise<Awaited<R>>;
};

/** `Type.ref()` with no id: the instance of the method that calls it (taken from `ctx`). */
export type OwnRef<T extends StateTypeDeclaration> = Omit<Ref<T>, "stateId">;

type FactoryKeys<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"]]: T["methods"][K] extends { factory: object } ? K : never;
}[keyof T["methods"]];

/** A constructor called on the type: the id is optional (omitted, a new one is made). */
export type Constructor<T extends StateTypeDeclaration, M extends MethodDeclaration> = {
  (ctx: Context, stateId: string, ...args: Args<M>): Promise<[Ref<T>, ResponseOut<M>]>;
  (ctx: Context, ...args: Args<M>): Promise<[Ref<T>, ResponseOut<M>]>;
};
type Constructors<T extends StateTypeDeclaration> = { [K in FactoryKeys<T>]: Constructor<T, T["methods"][K]> };

type AbortedClasses<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"] & string as `${Capitalize<K>}Aborted`]: AbortedClass<DeclaredError<T["methods"][K]>>;
};
type TaskClasses<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"] & string as `${Capitalize<K>}Task`]: {
    retrieve(ctx: Context, options: { taskId: TaskId | string }): Task<ResponseOut<T["methods"][K]>>;
  };
};
type MethodSchemas<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"] & string as `${Capitalize<K>}Request`]: ToSchema<T["methods"][K]["request"]>;
} & {
  [K in keyof T["methods"] & string as `${Capitalize<K>}Response`]: T["methods"][K]["response"] extends SchemaLike
    ? ToSchema<T["methods"][K]["response"]>
    : z.ZodVoid;
};

export type StateType<Name extends string, T extends StateTypeDeclaration> = AbortedClasses<T> &
  TaskClasses<T> &
  MethodSchemas<T> &
  Constructors<T> & {
    readonly name: Name;
    /** The state's schema: `z.infer<typeof Account.State>` (or `StateOf<typeof Account>`) is its type. */
    readonly State: z.ZodObject<T["state"]>;
    ref(stateId: string): Ref<T>;
    /** Inside a method: its own instance. */
    ref(): OwnRef<T>;
    /** Constructors run once per key (see `Ref.idempotently`). */
    idempotently(alias?: string): Constructors<T>;
    /** In a workflow: constructors run once per workflow, also inside a loop. */
    perWorkflow(alias: string): Constructors<T>;
    servicer(impl: ServicerImpl<T>): Servicer;
    /** @internal */
    readonly [DEFINITION]: StateTypeDefinition;
  };

/** The state of a state type: `StateOf<typeof Account>`. */
export type StateOf<S extends { State: z.ZodType }> = z.output<S["State"]>;
/** The request of a method, as the method receives it: `RequestOf<typeof Account, "withdraw">`. */
export type RequestOf<S, M extends string> = S extends Record<`${Capitalize<M>}Request`, z.ZodType> ? z.output<S[`${Capitalize<M>}Request`]> : never;
/** The response of a method, as its caller receives it: `ResponseOf<typeof Account, "withdraw">`. */
export type ResponseOf<S, M extends string> = S extends Record<`${Capitalize<M>}Response`, z.ZodType> ? z.output<S[`${Capitalize<M>}Response`]> : never;

// ---------------------------------------------------------------------------
// The runtime view of a declaration.

export const DEFINITION = Symbol.for("mend.definition");

export interface MethodDefinition {
  readonly name: string;
  readonly kind: Kind;
  /** A constructor (`factory: {}`). */
  readonly factory: boolean;
  readonly request: z.ZodType;
  readonly response: z.ZodType;
  readonly errors: readonly z.ZodType[];
  readonly retry?: Partial<RetryPolicy>;
  /** From the declaration's `timeout`, if it has one. */
  readonly timeoutMs?: number;
  readonly Aborted: AbortedClass<unknown>;
}

export interface StateTypeDefinition {
  readonly name: string;
  readonly state: z.ZodObject;
  /** The state a constructor starts from: the fields that have defaults. */
  readonly initial: z.ZodType;
  readonly methods: ReadonlyMap<string, MethodDefinition>;
  /** The names of its constructors; empty for a type whose instances exist from their first write. */
  readonly constructors: readonly string[];
}

export interface Servicer {
  readonly definition: StateTypeDefinition;
  readonly impl: Readonly<Record<string, (...args: never[]) => unknown>>;
  readonly authorizer?: Authorizer;
}

const KINDS: readonly Kind[] = ["reader", "writer", "transaction", "workflow"];
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Names a constructor cannot have: they are the type's own members. */
const RESERVED = new Set(["name", "ref", "servicer", "idempotently", "perWorkflow", "State", "authorizer"]);

function toSchema(value: SchemaLike | undefined, fallback: z.ZodType): z.ZodType {
  if (value === undefined) return fallback;
  if (value instanceof z.ZodType) return value;
  return z.object(value as Shape);
}

function checkKeys(value: unknown, allowed: readonly string[], what: string): void {
  if (typeof value !== "object" || value === null) throw new MendError("INVALID_API", `${what} must be an object.`);
  for (const key of Object.keys(value))
    if (!allowed.includes(key))
      throw new MendError("INVALID_API", `${what} has an unknown key '${key}' (it may have ${allowed.join(", ")}).`);
}

function defineMethod(typeName: string, name: string, decl: MethodDeclaration): MethodDefinition {
  const what = `${typeName}.${name}`;
  if (!IDENTIFIER.test(name)) throw new MendError("INVALID_API", `${what}: a method name must be an identifier.`);
  checkKeys(decl, METHOD_KEYS, `The declaration of ${what}`);
  if (!KINDS.includes(decl.kind))
    throw new MendError("INVALID_API", `${what}: kind must be one of ${KINDS.join(", ")}, got ${String(decl.kind)}.`);
  const factory = decl.factory !== undefined;
  if (factory) {
    if (decl.kind !== "writer" && decl.kind !== "transaction")
      throw new MendError("INVALID_API", `${what}: only a writer or a transaction may be a constructor (factory: {}), not a ${decl.kind}.`);
    if (RESERVED.has(name)) throw new MendError("INVALID_API", `${what}: a constructor cannot be named '${name}', which ${typeName}.${name} already is.`);
  }
  return {
    name,
    kind: decl.kind,
    factory,
    request: toSchema(decl.request, z.object({})),
    response: toSchema(decl.response, z.void()),
    errors: decl.errors ?? [],
    retry: decl.retry,
    ...(decl.timeout === undefined ? {} : { timeoutMs: durationMs(decl.timeout, `${what}: timeout`) }),
    Aborted: makeAbortedClass(typeName, name),
  };
}

/** Declares the state types of an application; the types of every call follow from it. */
export function defineApi<const D extends Record<string, StateTypeDeclaration>>(
  declaration: D & CheckedApi<D>,
): { [K in keyof D & string]: StateType<K, D[K]> } {
  const result: Record<string, unknown> = {};
  for (const [name, decl] of Object.entries(declaration as D)) {
    if (!IDENTIFIER.test(name)) throw new MendError("INVALID_API", `'${name}': a state type name must be an identifier.`);
    checkKeys(decl, STATE_TYPE_KEYS, `The declaration of ${name}`);
    if (typeof decl.methods !== "object" || decl.methods === null) throw new MendError("INVALID_API", `${name}: methods must be an object.`);
    const methods = new Map<string, MethodDefinition>();
    for (const [method, m] of Object.entries(decl.methods)) methods.set(method, defineMethod(name, method, m));
    const state = z.object(decl.state ?? {});
    const constructors = [...methods.values()].filter((m) => m.factory).map((m) => m.name);
    result[name] = makeStateType({ name, state, initial: state.partial(), methods, constructors });
  }
  return result as { [K in keyof D & string]: StateType<K, D[K]> };
}

export type { Aborted, Outcome };
