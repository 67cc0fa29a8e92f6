import { session } from "../api";
import { editorLink, parseStack } from "../stack";

/** An error's stack; each frame of the user's code opens its file at the line in the editor. */
export function StackView({ stack }: { stack: string }) {
  const { head, frames } = parseStack(stack);
  const template = session.value?.editorUrl ?? "vscode://file/{file}:{line}:{column}";
  return (
    <div class="stack">
      <p class="error-line">{head}</p>
      <ol>
        {frames.map((f, i) => (
          <li key={i}>
            {f.file !== undefined ? (
              <a class="frame" href={editorLink(template, { file: f.file, line: f.line!, column: f.column! })} title="Open in the editor">
                {f.text}
              </a>
            ) : (
              <span class="frame dim">{f.text}</span>
            )}
          </li>
        ))}
      </ol>
    </div>
  );
}
