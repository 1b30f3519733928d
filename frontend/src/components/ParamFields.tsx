import type { ApiError } from "../api/client";
import { BAD_NUMBER, paramHint, paramText, type ParamDecl } from "../forms";
import { Field } from "./ui";

/** One field per parameter the strategy declares: a number input within its range (a whole-number step for an
 *  int), a checkbox for a bool, a list for a choice; its description, range and default under it, and the API's
 *  error for it (params.<name>). `name` prefixes the inputs' names ("assign" -> "assign-param-fast"). */
export function ParamFields({ decl, texts, onChange, err, name }: {
  decl: ParamDecl[]; texts: Record<string, string>; onChange: (texts: Record<string, string>) => void; err: ApiError | null; name: string;
}) {
  const set = (k: string, v: string) => onChange({ ...texts, [k]: v });
  return (
    <div className="param-fields" data-testid={`${name}-param-fields`}>
      {decl.map((d) => {
        const text = texts[d.name] ?? paramText(d, d.default);
        const input = `${name}-param-${d.name}`;
        const error = err?.forField(`params.${d.name}`);
        if (d.type === "bool") {
          return (
            <label key={d.name} className={`check param-check${error ? " has-error" : ""}`} title={d.description ?? undefined}>
              <input type="checkbox" name={input} checked={text === "true"} onChange={(e) => set(d.name, String(e.target.checked))} />
              <span>{d.name}{d.description && <small className="hint">{d.description}</small>}
                {error && <small className="field-error" role="alert">{error}</small>}</span>
            </label>
          );
        }
        return (
          <Field key={d.name} label={d.name} error={error} hint={paramHint(d) || undefined}>
            {d.type === "choice" ? (
              <select name={input} value={text} onChange={(e) => set(d.name, e.target.value)}>
                {d.default === null || d.default === undefined ? <option value="">Default</option> : null}
                {(d.choices ?? []).map((c) => <option key={JSON.stringify(c)} value={JSON.stringify(c)}>{String(c)}</option>)}
              </select>
            ) : (
              // what the browser cannot read as a number reads as "": kept as BAD_NUMBER, not as "use the default"
              <input name={input} type="number" inputMode={d.type === "int" ? "numeric" : "decimal"} value={text === BAD_NUMBER ? "" : text}
                min={d.min ?? undefined} max={d.max ?? undefined} step={d.step ?? (d.type === "int" ? 1 : "any")}
                placeholder={d.default !== null && d.default !== undefined ? String(d.default) : "default"}
                onChange={(e) => set(d.name, e.target.validity.badInput ? BAD_NUMBER : e.target.value)} />
            )}
          </Field>
        );
      })}
    </div>
  );
}
