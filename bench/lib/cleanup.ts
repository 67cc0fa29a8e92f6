import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ResultPromise } from "execa";

// Everything a benchmark leaves behind is registered here, so that a failure, an
// exception or Ctrl+C still stops every child and removes every temp folder.
const folders = new Set<string>();
const children = new Set<ResultPromise>();

/** A new temp folder, removed by `cleanUp()` (each benchmark calls it when it ends). */
export function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `mend-bench-${label}-`));
  folders.add(dir);
  return dir;
}

/** Keeps `child` until it exits; `cleanUp()` kills it if it has not. */
export function track<T extends ResultPromise>(child: T): T {
  children.add(child);
  void child.then(
    () => children.delete(child),
    () => children.delete(child),
  );
  return child;
}

function alive(child: ResultPromise): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Stops `child`: SIGINT (so that it stops its own children), then SIGKILL after `graceMs`. */
export async function stopChild(child: ResultPromise, graceMs = 5000): Promise<void> {
  if (alive(child)) {
    child.kill("SIGINT");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await child.catch(() => {});
    clearTimeout(timer);
  }
  children.delete(child);
}

/** Stops every child still running and removes every temp folder. */
export async function cleanUp(): Promise<void> {
  await Promise.all([...children].map((c) => stopChild(c)));
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  folders.clear();
}

/** Last resort when the bench process itself is interrupted or exits early. */
export function cleanUpNow(): void {
  for (const c of children) if (alive(c)) c.kill("SIGKILL");
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
}
