// The esbuild plugins that make an app's build behave as its modules do under Node:
// packages are loaded by Node from where the file that imports them would find them,
// `mend`/`zod` are the runtime's own copies, and (in a bundle) each file keeps its own
// `import.meta`.
import type { Plugin } from "esbuild";
import { readFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";
import { LOADER_GLOBAL, SHARED_MODULES, sharedModuleSource } from "./shared.js";

/** The name `import.meta` is replaced with; each file that uses it declares its own. */
export const IMPORT_META = "__mend_import_meta";

/**
 * The declaration put before a file's first line (on that line, so that line numbers do
 * not move): what `import.meta` holds for the file under Node.
 */
export function importMetaPrefix(file: string): string {
  const url = JSON.stringify(pathToFileURL(file).href);
  const resolve = `(s) => globalThis[Symbol.for(${JSON.stringify(LOADER_GLOBAL)})].resolve(s, ${url})`;
  return `const ${IMPORT_META} = { url: ${url}, dirname: ${JSON.stringify(dirname(file))}, filename: ${JSON.stringify(file)}, resolve: ${resolve} };`;
}

/** The source with its `import.meta` declaration, after a `#!` line if it has one. */
export function withImportMeta(source: string, file: string): string {
  const prefix = importMetaPrefix(file);
  if (!source.startsWith("#!")) return prefix + source;
  const eol = source.indexOf("\n");
  return eol < 0 ? source : `${source.slice(0, eol + 1)}${prefix}${source.slice(eol + 1)}`;
}

const LOADERS = { ts: "ts", mts: "ts", cts: "ts", tsx: "tsx", js: "js", mjs: "js", cjs: "js", jsx: "jsx" } as const;

/** A file in a package: Node loads it, from its real path, rather than the bundle carrying it. */
export function isPackageFile(path: string): boolean {
  return /[\\/]node_modules[\\/]/.test(path);
}

const RESOLVING = Symbol("mend.resolving");

/** The key under which packagesPlugin records where `specifier`, imported by `importer` (a path), goes. */
export function packageKey(importer: string, specifier: string): string {
  return `${importer}\0${specifier}`;
}

/**
 * Where the app's bare imports go. `mend`, `zod` and `zod/v4` are the runtime's own
 * copies; builtins stay as they are; a package file is imported by Node from its URL;
 * anything else (tsconfig paths, a linked workspace package) is the app's own code.
 *
 * In a bundle, a shared module is a module that reads the runtime's copy from the loader
 * global, and a package import is rewritten to the file's URL. Given `packages` (the dev
 * graph build, whose output is not run), imports are left as written and each package
 * file's URL is recorded there, under packageKey, at every build.
 */
export function packagesPlugin(packages?: Map<string, string>): Plugin {
  return {
    name: "mend-packages",
    setup(build) {
      build.onStart(() => packages?.clear());
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if ((args.pluginData as { [RESOLVING]?: true } | undefined)?.[RESOLVING]) return undefined;
        if (Object.hasOwn(SHARED_MODULES, args.path))
          return packages ? { path: args.path, external: true } : { path: args.path, namespace: "mend-shared" };
        if (isBuiltin(args.path)) return { path: args.path, external: true };
        if (args.kind === "require-call" || args.kind === "require-resolve") return { path: args.path, external: true };
        const found = await build.resolve(args.path, {
          kind: args.kind,
          importer: args.importer,
          resolveDir: args.resolveDir,
          pluginData: { [RESOLVING]: true },
        });
        if (found.errors.length > 0) return { errors: found.errors };
        if (found.external) return { path: found.path, external: true };
        if (!isPackageFile(found.path)) return undefined;
        // A package file is imported by its URL, so that it is found wherever the build lies.
        const url = pathToFileURL(found.path).href;
        if (!packages) return { path: url, external: true };
        packages.set(packageKey(args.importer, args.path), url);
        return { path: args.path, external: true };
      });

      if (!packages) build.onLoad({ filter: /.*/, namespace: "mend-shared" }, (args) => ({ contents: sharedModuleSource(args.path), loader: "js" }));
    },
  };
}

/** The plugin of a bundle (`mend serve`): packages as above, and each file with its own `import.meta`. */
export function appPlugin(): Plugin {
  const packages = packagesPlugin();
  return {
    name: "mend-app",
    async setup(build) {
      await packages.setup(build);
      // Synchronous reads: with 50 files, the thread pool's round trips cost more than the reads.
      build.onLoad({ filter: /\.[cm]?[jt]sx?$/ }, (args) => {
        if (isPackageFile(args.path)) return undefined;
        const source = readFileSync(args.path, "utf8");
        if (!source.includes("import.meta")) return { contents: source, loader: LOADERS[extensionOf(args.path)] };
        return { contents: withImportMeta(source, args.path), loader: LOADERS[extensionOf(args.path)] };
      });
    },
  };
}

function extensionOf(path: string): keyof typeof LOADERS {
  return path.slice(path.lastIndexOf(".") + 1) as keyof typeof LOADERS;
}
