import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "./temp.js";

const mounted: string[] = [];

/** A small file system of its own (tmpfs), or undefined where this process may not mount one (not root). */
export function smallDisk(kib: number): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const dir = join(tempDir(), "disk");
  mkdirSync(dir);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${kib}k`, "tmpfs", dir], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  mounted.push(dir);
  return dir;
}

/**
 * Unmounts the disks smallDisk made. Call it from an afterEach, once nothing has a file open
 * there, and before helpers/temp.ts removes the folders (hooks run in reverse order).
 */
export function unmountDisks(): void {
  for (const dir of mounted.splice(0)) execFileSync("umount", [dir]);
}
