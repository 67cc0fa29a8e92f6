import { setTimeout as sleep } from "node:timers/promises";

export interface Attempt {
  number: number;
  version: string;
  startedAt: number;
  endedAt: number | null;
  outcome: string | null;
}

/**
 * A JSON request to a mend server. Retries while the server cannot be reached: in
 * restart mode the runtime is between processes for a moment.
 */
export async function api<T>(url: string, path: string, body?: unknown, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let response: Response;
    try {
      response = await fetch(`${url}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${path}: ${(e as Error).message}`, { cause: e });
      await sleep(10);
      continue;
    }
    const json = (await response.json()) as T & { error?: { message: string } };
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}: ${json.error?.message ?? JSON.stringify(json)}`);
    return json;
  }
}

export async function spawnTask(url: string, task: { stateType: string; stateId: string; method: string; request: unknown }): Promise<string> {
  const { taskId } = await api<{ taskId: { taskUuid: string } }>(url, "/v1/tasks", task);
  return taskId.taskUuid;
}

export async function attemptsOf(url: string, uuid: string): Promise<Attempt[]> {
  return (await api<{ attempts: Attempt[] }>(url, `/v1/tasks/${uuid}`)).attempts;
}

export async function health(url: string): Promise<{ version: string; pid: number; rss: number }> {
  return api(url, "/health");
}
