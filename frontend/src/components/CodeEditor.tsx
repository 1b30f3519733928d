import { useEffect, useRef } from "react";
import { EditorSelection, EditorState, StateEffect } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin, WidgetType, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, type DecorationSet, type ViewUpdate } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { StreamLanguage, syntaxHighlighting, defaultHighlightStyle, bracketMatching, indentOnInput } from "@codemirror/language";
import { lua } from "@codemirror/legacy-modes/mode/lua";
import { forEachDiagnostic, linter, lintGutter, type Diagnostic as CmDiagnostic } from "@codemirror/lint";
import { api } from "../api/client";
import { CHECKING, checkOf, checkOfFailure, type Check } from "../check";
import { asApiError } from "../forms";

const RETRY_MS = 3000; // a check the server could not make is tried again, until it answers
const recheck = StateEffect.define<null>();

/** The error's message at the end of its line, so it reads without hovering. */
class InlineMessage extends WidgetType {
  constructor(readonly message: string) { super(); }
  eq(other: InlineMessage) { return other.message === this.message; }
  toDOM() {
    const el = document.createElement("span");
    el.className = "cm-inline-error";
    el.textContent = this.message;
    return el;
  }
}

function inlineMessages(view: EditorView): DecorationSet {
  const seen = new Set<number>();
  const widgets: { pos: number; message: string }[] = [];
  forEachDiagnostic(view.state, (d, from) => {
    const line = view.state.doc.lineAt(from);
    if (seen.has(line.number)) return;
    seen.add(line.number);
    widgets.push({ pos: line.to, message: d.message });
  });
  widgets.sort((a, b) => a.pos - b.pos);
  return Decoration.set(widgets.map((w) => Decoration.widget({ widget: new InlineMessage(w.message), side: 1 }).range(w.pos)));
}

const inlineErrors = ViewPlugin.fromClass(class {
  decorations: DecorationSet;
  constructor(view: EditorView) { this.decorations = inlineMessages(view); }
  update(u: ViewUpdate) { this.decorations = inlineMessages(u.view); }
}, { decorations: (p) => p.decorations });

interface Props {
  value: string;
  onChange: (code: string) => void;
  /** What the server's sandbox says about the text now in the editor (CHECKING as soon as it changes). */
  onCheck?: (c: Check) => void;
  onSave?: () => void;
  /** Move the cursor to this line (bump `n` to jump again to the same line). */
  jump?: { line: number; n: number } | null;
}

/** A Lua editor whose errors come from the server's sandbox (debounced as you type), shown on their line. */
export function CodeEditor({ value, onChange, onCheck, onSave, jump }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const change = useRef(onChange);
  const report = useRef(onCheck);
  const save = useRef(onSave);
  change.current = onChange;
  report.current = onCheck;
  save.current = onSave;

  useEffect(() => {
    let retry: ReturnType<typeof setTimeout> | undefined;
    const serverLint = linter(async (v) => {
      clearTimeout(retry);
      const code = v.state.doc.toString();
      if (!code.trim()) {
        report.current?.({ state: "unchecked", reason: "the code is empty" });
        return [];
      }
      let check: Check;
      try {
        check = checkOf(await api.validate(code));
      } catch (x) {
        check = checkOfFailure(asApiError(x)); // too large, unreachable, busy: said, never taken for "no errors"
      }
      if (v.state.doc.toString() !== code) return []; // typed on meanwhile: the next run reports
      report.current?.(check);
      if (check.state === "unchecked") retry = setTimeout(() => v.dispatch({ effects: recheck.of(null) }), RETRY_MS);
      if (check.state !== "errors") return [];
      return check.errors.map((e): CmDiagnostic => { // an error of the whole code (its size) goes on line 1
        const line = v.state.doc.line(Math.min(Math.max(e.line ?? 1, 1), v.state.doc.lines));
        return { from: line.from, to: Math.max(line.to, line.from), severity: "error", message: e.message, source: "sandbox" };
      });
    }, { delay: 450, needsRefresh: (u) => u.transactions.some((tr) => tr.effects.some((e) => e.is(recheck))) });
    view.current = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          lineNumbers(), highlightActiveLineGutter(), history(), highlightActiveLine(), bracketMatching(), indentOnInput(),
          keymap.of([{ key: "Mod-s", preventDefault: true, run: () => { save.current?.(); return true; } },
            ...defaultKeymap, ...historyKeymap, indentWithTab]),
          StreamLanguage.define(lua), syntaxHighlighting(defaultHighlightStyle),
          lintGutter(), serverLint, inlineErrors, EditorView.lineWrapping,
          EditorView.updateListener.of((u) => {
            if (!u.docChanged) return;
            report.current?.(CHECKING);
            change.current(u.state.doc.toString());
          }),
          EditorView.theme({ "&": { fontSize: "13.5px" }, ".cm-content": { fontFamily: "var(--mono)" }, ".cm-gutters": { background: "#f7f8fb", borderRight: "1px solid var(--line)" },
            ".cm-inline-error": { color: "#b42318", background: "#fdecec", borderRadius: "4px", padding: "0 6px", marginLeft: "14px", fontFamily: "var(--sans)", fontSize: "12px" } }),
        ],
      }),
    });
    return () => { clearTimeout(retry); view.current?.destroy(); };
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
