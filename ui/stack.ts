// A stack as mend stores it (mapped to the .ts sources), split into frames, and the editor
// link of a frame of the user's code.

export interface Frame {
  /** The frame's line as printed, without its leading spaces. */
  text: string;
  /** Where it points, when it points at a file of the user's (an absolute path outside node_modules). */
  file?: string;
  line?: number;
  column?: number;
}

const FRAME = /^at (?:.*? \()?(.+?):(\d+):(\d+)\)?$/;

/** The header line of a stack and its frames. */
export function parseStack(stack: string): { head: string; frames: Frame[] } {
  const lines = stack.split("\n");
  const first = lines.findIndex((l) => /^\s+at /.test(l));
  const head = (first < 0 ? lines : lines.slice(0, first)).join("\n");
  const frames = (first < 0 ? [] : lines.slice(first)).map((raw): Frame => {
    const text = raw.trim();
    const match = FRAME.exec(text);
    if (!match) return { text };
    let file = match[1]!;
    if (file.startsWith("file://")) {
      try {
        file = decodeURIComponent(new URL(file).pathname);
      } catch {
        return { text };
      }
    }
    const absolute = file.startsWith("/") || /^[A-Za-z]:[\\/]/.test(file);
    if (!absolute || file.includes("/node_modules/") || file.includes("\\node_modules\\")) return { text };
    return { text, file, line: Number(match[2]), column: Number(match[3]) };
  });
  return { head, frames };
}

/** The link that opens a frame's file at its line: `{file}`, `{line}`, `{column}` replaced in the template. */
export function editorLink(template: string, frame: { file: string; line: number; column: number }): string {
  const file = encodeURI(frame.file).replaceAll("#", "%23").replaceAll("?", "%3F");
  // `vscode://file/{file}` with `/home/me/a.ts` is `vscode://file/home/me/a.ts`: one slash, as editors expect.
  return (file.startsWith("/") ? template.replaceAll("/{file}", "{file}") : template)
    .replaceAll("{file}", file)
    .replaceAll("{line}", String(frame.line))
    .replaceAll("{column}", String(frame.column));
}
