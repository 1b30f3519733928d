import { useEffect, useRef } from "react";
import { EditorSelection, EditorState } from "@codemirror/state";
import { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { StreamLanguage, syntaxHighlighting, defaultHighlightStyle, bracketMatching, indentOnInput } from "@codemirror/language";
import { lua } from "@codemirror/legacy-modes/mode/lua";
import { linter, lintGutter, type Diagnostic as CmDiagnostic } from "@codemirror/lint";
import { api, type Diagnostic } from "../api/client";

interface Props {
  value: string;
  onChange: (code: string) => void;
  onDiagnostics?: (d: Diagnostic[]) => void;
  onSave?: () => void;
  /** Move the cursor to this line (bump `n` to jump again to the same line). */
  jump?: { line: number; n: number } | null;
}

/** A Lua editor whose errors come from the server's sandbox (debounced as you type), shown on their line. */
export function CodeEditor({ value, onChange, onDiagnostics, onSave, jump }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const change = useRef(onChange);
  const report = useRef(onDiagnostics);
  const save = useRef(onSave);
  change.current = onChange;
  report.current = onDiagnostics;
  save.current = onSave;

  useEffect(() => {
    const serverLint = linter(async (v) => {
      const code = v.state.doc.toString();
      if (!code.trim()) {
        report.current?.([]);
        return [];
      }
      try {
        const res = await api.validate(code);
        if (v.state.doc.toString() !== code) return []; // typed on meanwhile: the next run reports
        report.current?.(res.errors);
        return res.errors.map((e): CmDiagnostic => {
          const line = v.state.doc.line(Math.min(Math.max(e.line ?? 1, 1), v.state.doc.lines));
          return { from: line.from, to: Math.max(line.to, line.from), severity: "error", message: e.message, source: "sandbox" };
        });
      } catch {
        return []; // the server is unreachable: the page says so elsewhere
      }
    }, { delay: 450 });
    view.current = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          lineNumbers(), highlightActiveLineGutter(), history(), highlightActiveLine(), bracketMatching(), indentOnInput(),
          keymap.of([{ key: "Mod-s", preventDefault: true, run: () => { save.current?.(); return true; } },
            ...defaultKeymap, ...historyKeymap, indentWithTab]),
          StreamLanguage.define(lua), syntaxHighlighting(defaultHighlightStyle),
          lintGutter(), serverLint,
          EditorView.updateListener.of((u) => u.docChanged && change.current(u.state.doc.toString())),
          EditorView.theme({ "&": { fontSize: "13.5px" }, ".cm-content": { fontFamily: "var(--mono)" }, ".cm-gutters": { background: "#f7f8fb", borderRight: "1px solid var(--line)" } }),
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

  useEffect(() => {
    const v = view.current;
    if (!v || !jump) return;
    const line = v.state.doc.line(Math.min(Math.max(jump.line, 1), v.state.doc.lines));
    v.dispatch({ selection: EditorSelection.cursor(line.from), effects: EditorView.scrollIntoView(line.from, { y: "center" }) });
    v.focus();
  }, [jump]);

  return <div className="editor" ref={host} data-testid="code-editor" />;
}
