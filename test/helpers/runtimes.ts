import { afterEach } from "vitest";
import { Runtime, type Application, type RuntimeOptions } from "mend";

const started: Runtime[] = [];
afterEach(async () => {
  for (const rt of started.splice(0)) await rt.stop({ graceMs: 0 });
});

/** Starts a runtime that is stopped after the current test. */
export async function start(app: Application, options: RuntimeOptions = {}): Promise<Runtime> {
  const rt = await Runtime.start(app, options);
  started.push(rt);
  return rt;
}

/** Resolves when `event` is emitted with a payload that `match` accepts. */
export function next<T>(rt: Runtime, event: Parameters<Runtime["on"]>[0], match: (payload: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve) => {
    const off = rt.on(event, ((payload: T) => {
      if (!match(payload)) return;
      off();
      resolve(payload);
    }) as never);
  });
}
