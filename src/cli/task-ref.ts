import { MendError } from "../api/errors.js";
import { normalUuidPrefix } from "../api/task-id.js";

/** A task as a person names it: its uuid or the start of it, and maybe the state it belongs to. */
export interface TaskRef {
  /** A whole uuid, or the start of one (as `mend task list` and `mend dev run` print it). */
  uuid: string;
  stateType?: string;
  stateId?: string;
}

export const TASK_ID_FORMS = "a task uuid, the start of one (as mend task list shows it), or TYPE/STATE_ID/UUID";

/** Reads a task id in any form the CLI accepts; the error says which forms those are. */
export function parseTaskRef(text: string): TaskRef {
  const parts = text.split("/");
  if (parts.length === 1) {
    const uuid = normalUuidPrefix(text);
    if (uuid === undefined) throw new MendError("INVALID_ARGUMENT", `'${text}' is not a task id: give ${TASK_ID_FORMS}.`);
    return { uuid };
  }
  const uuid = parts.length === 3 && parts[0] ? normalUuidPrefix(parts[2]!) : undefined;
  if (uuid === undefined) throw new MendError("INVALID_ARGUMENT", `'${text}' is not a task id: give ${TASK_ID_FORMS}.`);
  let stateId: string;
  try {
    stateId = decodeURIComponent(parts[1]!);
  } catch {
    throw new MendError("INVALID_ARGUMENT", `'${text}' is not a task id: its state id is not URI-encoded.`);
  }
  return { uuid, stateType: parts[0], stateId };
}
