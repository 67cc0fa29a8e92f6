// `mend dev run --typecheck`: the TypeScript checker, in a worker thread of the watcher so
// that a long check never holds back a build, a swap or the runtime's heartbeat. It uses the
// app's own `typescript` package and keeps one incremental program across checks.
import { createRequire } from "node:module";
import { dirname, join, resolve, sep } from "node:path";
import { performance } from "node:perf_hooks";
import { parentPort, workerData } from "node:worker_threads";
import type TS from "typescript";

export interface TypeCheckData {
  /** The app's folder: `typescript` is resolved from it, and only its files' errors are shown. */
  appDir: string;
  entry: string;
  color: boolean;
}

export type FromTypeChecker =
  | { type: "missing"; message: string }
  | { type: "ready"; version: string; config: string | undefined }
  | { type: "result"; errors: number; text: string; ms: number };

const { appDir, entry, color } = workerData as TypeCheckData;
const post = (m: FromTypeChecker) => parentPort!.postMessage(m);

let ts: typeof TS | undefined;
try {
  ts = createRequire(join(appDir, "package.json"))("typescript") as typeof TS;
} catch (e) {
  post({ type: "missing", message: (e as Error).message.split("\n")[0]! });
}

if (ts) {
  const t = ts;
  /** Source files by name, kept while their text is the same: the lib files are parsed once. */
  const parsed = new Map<string, { text: string; file: TS.SourceFile }>();
  let builder: TS.SemanticDiagnosticsBuilderProgram | undefined;

  const readConfig = (): { rootNames: string[]; options: TS.CompilerOptions; errors: TS.Diagnostic[]; file: string | undefined } => {
    const file = t.findConfigFile(dirname(entry), t.sys.fileExists);
    if (!file)
      return {
        rootNames: [entry], errors: [], file,
        options: {
          strict: true, noEmit: true, skipLibCheck: true, esModuleInterop: true,
          target: t.ScriptTarget.ES2022, module: t.ModuleKind.NodeNext, moduleResolution: t.ModuleResolutionKind.NodeNext,
        },
      };
    const errors: TS.Diagnostic[] = [];
    const config = t.getParsedCommandLineOfConfigFile(file, { noEmit: true }, { ...t.sys, onUnRecoverableConfigFileDiagnostic: (d) => errors.push(d) });
    if (!config) return { rootNames: [entry], options: { noEmit: true }, errors, file };
    // A tsconfig that does not include the entry (one of a parent folder) still checks it.
    const rootNames = config.fileNames.includes(entry) ? config.fileNames : [...config.fileNames, entry];
    return { rootNames, options: { ...config.options, noEmit: true }, errors: [...errors, ...config.errors], file };
  };

  const hostFor = (options: TS.CompilerOptions): TS.CompilerHost => {
    const host = t.createIncrementalCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
      const text = host.readFile(fileName);
      const hit = parsed.get(fileName);
      if (text !== undefined && hit?.text === text) return hit.file;
      const file = getSourceFile(fileName, languageVersion, onError, shouldCreate);
      if (file && text !== undefined) parsed.set(fileName, { text, file });
      return file;
    };
    return host;
  };

  const isAppFile = (fileName: string) => {
    const abs = resolve(appDir, fileName);
    return abs.startsWith(appDir + sep) && !abs.includes(`${sep}node_modules${sep}`);
  };

  const check = () => {
    const t0 = performance.now();
    const config = readConfig();
    builder = t.createSemanticDiagnosticsBuilderProgram(config.rootNames, config.options, hostFor(config.options), builder, config.errors);
    const all = [
      ...builder.getConfigFileParsingDiagnostics(),
      ...builder.getOptionsDiagnostics(),
      ...builder.getGlobalDiagnostics(),
      ...builder.getSyntacticDiagnostics(),
      ...builder.getSemanticDiagnostics(),
    ];
    const shown = all.filter((d) => d.category === t.DiagnosticCategory.Error && (!d.file || isAppFile(d.file.fileName)));
    const host: TS.FormatDiagnosticsHost = { getCurrentDirectory: () => appDir, getCanonicalFileName: (f) => f, getNewLine: () => "\n" };
    const text = shown.length === 0 ? "" : (color ? t.formatDiagnosticsWithColorAndContext : t.formatDiagnostics)(shown, host).trimEnd();
    post({ type: "result", errors: shown.length, text, ms: performance.now() - t0 });
  };

  post({ type: "ready", version: t.version, config: readConfig().file });
  parentPort!.on("message", (m: { type: "check" }) => {
    if (m.type !== "check") return;
    try {
      check();
    } catch (e) {
      post({ type: "result", errors: 1, text: `The type checker failed: ${(e as Error).message}`, ms: 0 });
    }
  });
}
