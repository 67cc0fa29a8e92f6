import type { Command } from "commander";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { MendError } from "../api/errors.js";
import { initFiles, projectName, type TemplateVersions } from "./init-templates.js";

/** tsx runs TypeScript scripts on Node 20, which cannot; mend itself does not depend on it. */
export const TSX = "^4.21.0";

interface PackageJson {
  name?: string;
  version: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

/** mend's own package.json: the nearest one above this module. */
function ownPackage(): PackageJson {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as PackageJson;
      if (pkg.name === "mend") return pkg;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("mend's package.json was not found above its own files.");
    dir = up;
  }
}

/** The versions a new project depends on: mend's own, and the ranges mend itself uses. */
export function templateVersions(pkg: PackageJson): TemplateVersions {
  const need = (deps: Record<string, string> | undefined, name: string) => {
    const range = deps?.[name];
    if (!range) throw new Error(`mend's package.json has no version of ${name}.`);
    return range;
  };
  return {
    mend: `^${pkg.version}`,
    zod: need(pkg.dependencies, "zod"),
    typescript: need(pkg.devDependencies, "typescript"),
    vitest: need(pkg.devDependencies, "vitest"),
    typesNode: need(pkg.devDependencies, "@types/node"),
    tsx: TSX,
  };
}

/** Writes a new project into `dir`; refuses, writing nothing, if any of its files exists. */
export function initProject(dir: string, versions: TemplateVersions): { name: string; files: string[] } {
  const root = resolve(dir);
  const name = projectName(basename(root));
  const files = initFiles(name, versions);
  const existing = [...files.keys()].filter((f) => existsSync(join(root, f)));
  if (existing.length > 0)
    throw new MendError("EXISTS", `Not overwriting ${existing.join(", ")} in ${root}; run mend init in a new or empty folder.`);
  for (const [file, text] of files) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), text, { flag: "wx" });
  }
  return { name, files: [...files.keys()] };
}

export function registerInit(program: Command): void {
  program
    .command("init")
    .description("create a new project: an app with a test, and the scripts to develop, serve and test it")
    .argument("[dir]", "the project's folder (created if needed)", ".")
    .action((dir: string) => {
      const { name, files } = initProject(dir, templateVersions(ownPackage()));
      console.log(`Created ${name} in ${dir}: ${files.join(", ")}.`);
      console.log("");
      if (resolve(dir) !== process.cwd()) console.log(`  cd ${dir}`);
      console.log("  npm install");
      console.log("  npm run dev     # serve it, rebuild and retry failing tasks on save");
      console.log("  npm test        # type check and the tests");
    });
}
