import { useEffect, useState } from "react";
import type { ApiError, Market, Strategy } from "../api/client";
import type { RunForm, SearchForm } from "../forms";
import { Field, TIMEFRAMES } from "./ui";

/** A form's state and a setter of one field by name, for the run forms' fields below. */
export type SetField<F> = (field: keyof F & string, value: string) => void;

/** A run form's state: `initial`, its market the first of `markets` once they load (when none is set). */
export function useRunForm<F extends RunForm>(initial: F, markets: Market[] | undefined) {
  const [form, setForm] = useState(initial);
  useEffect(() => { if (!form.market_id && markets?.length) setForm((f) => ({ ...f, market_id: String(markets[0].id) })); }, [markets]); // eslint-disable-line react-hooks/exhaustive-deps
  const setField: SetField<F> = (field, value) => setForm((f) => ({ ...f, [field]: value }));
  /** The change handler of the input of `field`. */
  const set = (field: keyof F & string) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => setField(field, e.target.value);
  return { form, setForm, setField, set };
}

/** The fields every run form starts with: the strategy, the market and timeframe, and the range of days. `name`
 *  prefixes the inputs' names ("bt" -> "bt-strategy", "bt-market", "bt-timeframe", "bt-from", "bt-to"). */
export function RunFields({ name, form, onChange, err, strategies, markets, strategyHint, toHint }: {
  name: string; form: RunForm; onChange: SetField<RunForm>; err: ApiError | null; strategies: Strategy[] | undefined; markets: Market[] | undefined;
  strategyHint?: string; toHint?: string;
}) {
  const set = (field: keyof RunForm) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => onChange(field, e.target.value);
  return (
    <>
      <Field label="Strategy" error={err?.forField("strategy_id")} hint={strategyHint}>
        <select name={`${name}-strategy`} value={form.strategy_id} onChange={set("strategy_id")}>
          <option value="">Choose…</option>
          {strategies?.map((s) => <option key={s.id} value={s.id}>{s.name} (v{s.version})</option>)}
        </select>
      </Field>
      <div className="row">
        <Field label="Market" error={err?.forField("market_id")}>
          <select name={`${name}-market`} value={form.market_id} onChange={set("market_id")}>
            {markets?.map((m) => <option key={m.id} value={m.id}>{m.exchange} · {m.symbol}</option>)}
          </select>
        </Field>
        <Field label="Timeframe" error={err?.forField("timeframe")}>
          <select name={`${name}-timeframe`} value={form.timeframe} onChange={set("timeframe")}>{TIMEFRAMES.map((t) => <option key={t}>{t}</option>)}</select>
        </Field>
      </div>
      <div className="row">
        <Field label="From" error={err?.forField("from")}><input type="date" name={`${name}-from`} value={form.from} onChange={set("from")} /></Field>
        <Field label="To" error={err?.forField("to")} hint={toHint}><input type="date" name={`${name}-to`} value={form.to} onChange={set("to")} /></Field>
      </div>
    </>
  );
}

/** The settings of a run that searches the strategy's parameters (an optimisation, a walk-forward): the fee, the
 *  lookback and the parameters held fixed. `name` prefixes the inputs' names as for RunFields. */
export function SearchFields({ name, form, onChange, err }: { name: string; form: SearchForm; onChange: SetField<SearchForm>; err: ApiError | null }) {
  const set = (field: keyof SearchForm) => (e: React.ChangeEvent<HTMLInputElement>) => onChange(field, e.target.value);
  return (
    <>
      <div className="row">
        <Field label="Fee %" error={err?.forField("fee")}><input name={`${name}-fee`} value={form.fee} onChange={set("fee")} /></Field>
        <Field label="Lookback" error={err?.forField("lookback")}><input name={`${name}-lookback`} inputMode="numeric" value={form.lookback} onChange={set("lookback")} /></Field>
      </div>
      <Field label="Fixed parameters" error={err?.forField("params")} hint="Not searched, e.g. size=0.5">
        <input name={`${name}-params`} value={form.params} onChange={set("params")} placeholder="name=value, …" spellCheck={false} />
      </Field>
    </>
  );
}
