import { z } from "zod";
import { makeAbortedClass, MendError, type Aborted, type AbortedClass } from "./errors.js";
import {
  CALLER,
  type CallTarget,
  type Context,
  type Kind,
  type Outcome,
  type ReaderContext,
  type TransactionContext,
  type WorkflowContext,
  type WriterContext,
} from "./context.js";
import { checkName } from "./ids.js";
import { TaskId, type TaskOptions } from "./task-id.js";
import { Task, reviveOutcome } from "./task.js";
import type { RetryPolicy } from "../runtime/backoff.js";
import { durationMs, type Duration } from "./workflow.js";

// ---------------------------------------------------------------------------
// The declaration, as the user writes it.

type Shape = z.ZodRawShape;
/** A schema, or the shape of an object schema (`{ amount: z.number() }`). */
export type SchemaLike = z.ZodType | Shape;

export interface MethodDeclaration {
  kind: Kind;
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

// ---------------------------------------------------------------------------
// Types inferred from the declaration.

type ToSchema<S> = S extends z.ZodType ? S : S extends Shape ? z.ZodObject<S> : z.ZodObject<{}>;
type In<S> = z.input<ToSchema<S>>;
type Out<S> = z.output<ToSchema<S>>;

export type StateOf<T extends StateTypeDeclaration> = z.output<z.ZodObject<T["state"]>>;
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
  ? (ctx: ReaderContext, state: Readonly<StateOf<T>>, request: RequestOut<M>) => Awaitable<ResponseIn<M>>
  : M["kind"] extends "writer"
    ? (ctx: WriterContext, state: StateOf<T>, request: RequestOut<M>) => Awaitable<ResponseIn<M>>
    : M["kind"] extends "transaction"
      ? (ctx: TransactionContext, state: StateOf<T>, request: RequestOut<M>) => Awaitable<ResponseIn<M>>
      : (ctx: WorkflowContext, request: RequestOut<M>) => Awaitable<ResponseIn<M>>;

export type ServicerImpl<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"]]: MethodImpl<T, T["methods"][K]>;
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
  /** Names the next call, so a workflow tells two calls to the same method apart. */
  idempotently(alias: string): Ref<T>;
};

type AbortedClasses<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"] & string as `${Capitalize<K>}Aborted`]: AbortedClass<DeclaredError<T["methods"][K]>>;
};
type TaskClasses<T extends StateTypeDeclaration> = {
  [K in keyof T["methods"] & string as `${Capitalize<K>}Task`]: {
    retrieve(ctx: Context, options: { taskId: TaskId | string }): Task<ResponseOut<T["methods"][K]>>;
  };
};

export type StateType<Name extends string, T extends StateTypeDeclaration> = AbortedClasses<T> &
  TaskClasses<T> & {
    readonly name: Name;
    ref(stateId: string): Ref<T>;
    servicer(impl: ServicerImpl<T>): Servicer;
    /** @internal */
    readonly [DEFINITION]: StateTypeDefinition;
  };

// ---------------------------------------------------------------------------
// The runtime view of a declaration.

export const DEFINITION = Symbol.for("mend.definition");

export interface MethodDefinition {
  readonly name: string;
  readonly kind: Kind;
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
  readonly methods: ReadonlyMap<string, MethodDefinition>;
}

export interface Servicer {
  readonly definition: StateTypeDefinition;
  readonly impl: Readonly<Record<string, (...args: never[]) => unknown>>;
}

const KINDS: readonly Kind[] = ["reader", "writer", "transaction", "workflow"];
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function toSchema(value: SchemaLike | undefined, fallback: z.ZodType): z.ZodType {
  if (value === undefined) return fallback;
  if (value instanceof z.ZodType) return value;
  return z.object(value as Shape);
}

function defineMethod(typeName: string, name: string, decl: MethodDeclaration): MethodDefinition {
  if (!IDENTIFIER.test(name)) throw new MendError("INVALID_API", `${typeName}.${name}: a method name must be an identifier.`);
  if (!KINDS.includes(decl.kind))
    throw new MendError("INVALID_API", `${typeName}.${name}: kind must be one of ${KINDS.join(", ")}, got ${String(decl.kind)}.`);
  return {
    name,
    kind: decl.kind,
    request: toSchema(decl.request, z.object({})),
    response: toSchema(decl.response, z.void()),
    errors: decl.errors ?? [],
    retry: decl.retry,
    ...(decl.timeout === undefined ? {} : { timeoutMs: durationMs(decl.timeout, `${typeName}.${name}: timeout`) }),
    Aborted: makeAbortedClass(typeName, name),
  };
}

/** Declares the state types of an application; the types of every call follow from it. */
export function defineApi<const D extends Record<string, StateTypeDeclaration>>(
  declaration: D,
): { [K in keyof D & string]: StateType<K, D[K]> } {
  const result: Record<string, unknown> = {};
  for (const [name, decl] of Object.entries(declaration)) {
    if (!IDENTIFIER.test(name)) throw new MendError("INVALID_API", `'${name}': a state type name must be an identifier.`);
    const methods = new Map<string, MethodDefinition>();
    for (const [method, m] of Object.entries(decl.methods)) methods.set(method, defineMethod(name, method, m));
    result[name] = makeStateType({ name, state: z.object(decl.state), methods });
  }
  return result as { [K in keyof D & string]: StateType<K, D[K]> };
}

function capitalize(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}

function makeStateType(definition: StateTypeDefinition): unknown {
  const type: Record<string | symbol, unknown> = {
    name: definition.name,
    [DEFINITION]: definition,
    ref: (stateId: string) => makeRef(definition, stateId),
    servicer: (impl: Record<string, (...args: never[]) => unknown>): Servicer => {
      for (const method of definition.methods.keys())
        if (typeof impl[method] !== "function")
          throw new MendError("INVALID_SERVICER", `The servicer of ${definition.name} has no method '${method}'.`);
      return { definition, impl };
    },
  };
  for (const m of definition.methods.values()) {
    type[`${capitalize(m.name)}Aborted`] = m.Aborted;
    type[`${capitalize(m.name)}Task`] = {
      retrieve(ctx: Context, options: { taskId: TaskId | string }) {
        const taskId = typeof options.taskId === "string" ? TaskId.parse(options.taskId) : options.taskId;
        return new Task(ctx[CALLER], taskId, m);
      },
    };
  }
  return type;
}

function validateRequest(method: MethodDefinition, target: CallTarget, request: unknown): unknown {
  const parsed = method.request.safeParse(request ?? {});
  if (!parsed.success) throw invalidRequest(target, parsed.error);
  return parsed.data;
}

export function invalidRequest(target: CallTarget, error: z.ZodError): MendError {
  return new MendError("INVALID_ARGUMENT", `Invalid request for ${target.stateType}.${target.method}: ${z.prettifyError(error)}`);
}

function makeRef(definition: StateTypeDefinition, stateId: string, alias?: string): unknown {
  // Checked before any call can write under this id: a lone surrogate would be stored as another id.
  checkName(stateId, `The state id given to ${definition.name}.ref()`);
  const target = (method: string): CallTarget => ({ stateType: definition.name, stateId, method });
  const methods = (make: (m: MethodDefinition) => unknown) =>
    Object.fromEntries([...definition.methods.values()].map((m) => [m.name, make(m)]));

  const ref: Record<string, unknown> = {
    stateId,
    ...methods((m) => async (ctx: Context, request?: unknown) => {
      const t = target(m.name);
      const outcome = await ctx[CALLER].call(t, validateRequest(m, t, request), alias);
      return reviveOutcome(outcome, m);
    }),
    schedule: (options?: TaskOptions) =>
      methods((m) => (ctx: Context, request?: unknown) => {
        const t = target(m.name);
        return ctx[CALLER].enqueue(t, validateRequest(m, t, request), { mode: "schedule", when: options?.when, alias });
      }),
    spawn: (options?: TaskOptions) =>
      methods((m) => async (ctx: Context, request?: unknown) => {
        const t = target(m.name);
        const caller = ctx[CALLER];
        const taskId = await caller.enqueue(t, validateRequest(m, t, request), { mode: "spawn", when: options?.when, alias });
        return { task: new Task(caller, taskId, m) };
      }),
    idempotently: (name: string) => makeRef(definition, stateId, name),
  };
  return ref;
}

export type { Aborted, Outcome };
