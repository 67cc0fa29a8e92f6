import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach } from "vitest";

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const madeForFile: string[] = [];
afterAll(() => {
  for (const dir of madeForFile.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A temporary folder removed after the current test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "mend-test-"));
  made.push(dir);
  return dir;
}

/** A temporary folder removed after the current file: for a server that serves all its tests. */
export function tempDirForFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "mend-test-"));
  madeForFile.push(dir);
  return dir;
}
