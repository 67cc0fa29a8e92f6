export { z } from "zod";
export { defineApi } from "./api/define.js";
export type {
  Ref,
  OwnRef,
  Constructor,
  StateType,
  ServicerImpl,
  Servicer,
  MethodDeclaration,
  StateTypeDeclaration,
  StateOf,
  RequestOf,
  ResponseOf,
} from "./api/define.js";
export { allow, deny, type Authorizer, type AuthorizerCall, type Decision, type TokenVerifier } from "./api/authorization.js";
export { Application, type ApplicationOptions } from "./api/application.js";
export { Context, ReaderContext, WriterContext, TransactionContext, WorkflowContext, type Auth, type Outcome } from "./api/context.js";
export {
  Aborted,
  Cancelled,
  DeadlineExceeded,
  MendError,
  TaskNotFound,
  MethodFailed,
  InvalidArgument,
  NotAllowed,
  StateNotConstructed,
  StateAlreadyConstructed,
  PermissionDenied,
  IdempotencyConflict,
  type AbortedClass,
} from "./api/errors.js";
export { TaskId, type TaskOptions, type When } from "./api/task-id.js";
export { Task } from "./api/task.js";
export {
  atLeastOnce,
  atMostOnce,
  until,
  AtMostOnceFailedBeforeCompleting,
  type AtMostOnceOptions,
  type Duration,
  type LoopOptions,
  type UntilOptions,
} from "./api/workflow.js";
export { Runtime, type RuntimeOptions, type ContextOptions, type TaskInfo, type TaskSummary, type ValuePreview, type AttemptInfo } from "./runtime/runtime.js";
export type { RerunBy, RerunResult } from "./runtime/inspector.js";
export { StoreError } from "./store/open.js";
export type { RetryPolicy } from "./runtime/backoff.js";
export { ExternalContext, type ExternalContextOptions } from "./client/external.js";
export { startServer, type ServerOptions, type RunningServer } from "./server/http.js";
