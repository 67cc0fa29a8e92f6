// Read at load time with top-level await, from the file next to this source, as under Node.
import { readFile } from "node:fs/promises";

export const settings = JSON.parse(await readFile(new URL("./settings.json", import.meta.url), "utf8")) as { greeting: string };

// A package that only `import` can load, imported while loading.
const { shout } = await import("esm-only");
if (shout("x") !== "X!") throw new Error("esm-only did not load");

export const where = {
  url: import.meta.url,
  dirname: import.meta.dirname,
  filename: import.meta.filename,
  resolved: import.meta.resolve("./settings.json"),
};
