import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach } from "vitest";

const perTest: string[] = [];
const perFile: string[] = [];
afterEach(() => {
  for (const dir of perTest.splice(0)) rmSync(dir, { recursive: true, force: true });
});
afterAll(() => {
  for (const dir of perFile.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A temporary folder removed after the current test, or after the file with `forFile` (for a server the whole file uses). */
export function tempDir(forFile = false): string {
  const dir = mkdtempSync(join(tmpdir(), "mend-test-"));
  (forFile ? perFile : perTest).push(dir);
  return dir;
}
