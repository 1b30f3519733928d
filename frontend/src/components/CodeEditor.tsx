import { useEffect, useRef } from "react";
import { EditorState } from "@codemirror/state";
import { EditorView, keymap, lineNumbers, highlightActiveLine } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { StreamLanguage, syntaxHighlighting, defaultHighlightStyle, bracketMatching } from "@codemirror/language";
import { lua } from "@codemirror/legacy-modes/mode/lua";
import { linter, lintGutter, type Diagnostic as CmDiagnostic } from "@codemirror/lint";
import { api, type Diagnostic } from "../api/client";

interface Props {
  value: string;
  onChange: (code: string) => void;
  onDiagnostics?: (d: Diagnostic[]) => void;
}

/** A Lua editor whose errors come from the server's sandbox, shown on their line. */
export function CodeEditor({ value, onChange, onDiagnostics }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const change = useRef(onChange);
  const report = useRef(onDiagnostics);
  change.current = onChange;
  report.current = onDiagnostics;

  useEffect(() => {
    const serverLint = linter(async (v) => {
      const code = v.state.doc.toString();
      if (!code.trim()) return [];
      try {
        const res = await api.validate(code);
        report.current?.(res.errors);
        return res.errors.map((e): CmDiagnostic => {
          const line = v.state.doc.line(Math.min(Math.max(e.line ?? 1, 1), v.state.doc.lines));
          return { from: line.from, to: line.to, severity: "error", message: e.message };
        });
      } catch {
        return [];
      }
    }, { delay: 400 });
    view.current = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          lineNumbers(), history(), highlightActiveLine(), bracketMatching(),
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          StreamLanguage.define(lua), syntaxHighlighting(defaultHighlightStyle),
          lintGutter(), serverLint,
          EditorView.updateListener.of((u) => u.docChanged && change.current(u.state.doc.toString())),
          EditorView.theme({ "&": { fontSize: "13.5px" }, ".cm-content": { fontFamily: "var(--mono)" } }),
        ],
      }),
    });
    return () => view.current?.destroy();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
  }, [value]);

  return <div className="editor" ref={host} data-testid="code-editor" />;
}
