import { useEffect, useState } from "react";
import { api, type ApiError, type Assignment, type Schemas } from "../api/client";
import { CloseButton } from "../components/Close";
import { ParamFields } from "../components/ParamFields";
import { Alert, Card, Field, Loader, PageHead, TIMEFRAMES, fmt, price, signed, time, tone } from "../components/ui";
import { asApiError, assertValid, checkAmount, checkTrigger, declaredParams, formatParams, paramTexts, parseParams, triggerBody, type ParamDecl } from "../forms";
import { useLoad, useThrottled } from "../hooks";
import { triggerLabel } from "../quotes";
import { Link } from "../router";
import type { LiveState } from "../stream";
import { DecisionPill } from "./Dashboard";

const BLANK = { strategy_id: "", market_id: "", timeframe: "1m", trader_id: "", allocation: "1000", params: "", lookback: "500",
  trigger: "candle", min_interval_ms: "1000", max_position: "", version: "" };
type Warning = Schemas["WarningOut"];

export function Assignments({ live, killed }: { live: LiveState; killed: boolean }) {
  const tick = useThrottled(live.activity, 2000);
  const list = useLoad(() => api.assignments(), [tick, killed]);
  const strategies = useLoad(() => api.strategies());
  const markets = useLoad(() => api.markets());
  const traders = useLoad(() => api.traders());
  // "Create an assignment" from a study's trial comes here with its strategy, market, timeframe and parameters
  const [form, setForm] = useState(() => {
    const q = new URLSearchParams(location.search);
    return { ...BLANK, strategy_id: q.get("strategy") ?? "", market_id: q.get("market") ?? "",
      timeframe: q.get("timeframe") ?? BLANK.timeframe, params: q.get("params") ?? "", lookback: q.get("lookback") ?? BLANK.lookback };
  });
  const [editing, setEditing] = useState<Assignment | null>(null);
  // A declaring strategy's parameters: the values to start from (saved, or the strategy's), and the fields' texts
  // as edited since; a strategy that declares none keeps the free-form text field (form.params).
  const [pvals, setPvals] = useState<Record<string, unknown> | null>(() => (form.params ? safeParse(form.params) : null));
  const [ptexts, setPtexts] = useState<Record<string, string>>({});
  const [allocation, setAllocation] = useState<Schemas["AllocationOut"] | null>(null);
  const [saved, setSaved] = useState<{ id: number; warnings: Warning[] } | null>(null);
  const [err, setErr] = useState<ApiError | null>(null);
  const [rowErr, setRowErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => setForm({ ...form, [k]: e.target.value });
  const market = markets.data?.items.find((m) => String(m.id) === form.market_id);
  const accounts = (traders.data?.items ?? []).filter((t) => !market || t.exchange === market.exchange);
  const strategy = strategies.data?.items.find((x) => String(x.id) === form.strategy_id);
  const sid = form.strategy_id;
  const versions = useLoad(() => (sid ? api.versions(Number(sid)).then((vs) => ({ sid, vs })) : Promise.resolve({ sid, vs: [] })), [sid]);
  const versionList = versions.data?.sid === sid ? versions.data.vs : [];
  // The declaration of the version it will run: the pinned one's, or the latest's
  const decl: ParamDecl[] | null = form.version ? versionList.find((v) => String(v.version) === form.version)?.declared ?? null : strategy?.declared ?? null;
  const declaring = !!decl && decl.length > 0;
  const texts = declaring ? { ...paramTexts(decl, pvals), ...ptexts } : {};

  // An allocation that takes the account's assignments past its value is said at once (and saved all the same).
  useEffect(() => {
    setAllocation(null);
    if (!form.trader_id || !form.market_id || checkAmount("allocation", form.allocation)) return;
    let stop = false;
    const timer = setTimeout(() => {
      api.checkAllocation({ trader_id: Number(form.trader_id), market_id: Number(form.market_id), allocation: form.allocation.trim(), assignment_id: editing?.id ?? null })
        .then((r) => !stop && setAllocation(r), () => !stop && setAllocation(null));
    }, 400);
    return () => { stop = true; clearTimeout(timer); };
  }, [form.trader_id, form.market_id, form.allocation, editing?.id]);

  const chooseStrategy = (e: React.ChangeEvent<HTMLSelectElement>) => {
    const s = strategies.data?.items.find((x) => String(x.id) === e.target.value);
    setForm({ ...form, strategy_id: e.target.value, version: "", params: s ? formatParams(s.params) : form.params });
    if (s) { setPvals(s.params); setPtexts({}); }
  };
  const edit = (a: Assignment) => {
    setEditing(a);
    setErr(null);
    setForm({ strategy_id: String(a.strategy_id), market_id: String(a.market_id), timeframe: a.timeframe, trader_id: a.trader_id ? String(a.trader_id) : "",
      allocation: a.allocation, params: formatParams(a.params), lookback: String(a.lookback),
      trigger: a.trigger === "tick" ? "tick" : "candle", min_interval_ms: String(a.min_interval_ms ?? 1000), max_position: a.max_position ?? "",
      version: a.pinned_version ? String(a.pinned_version) : "" });
    setPvals(a.params);
    setPtexts({});
  };
  const cancel = () => { setEditing(null); setForm(BLANK); setPvals(null); setPtexts({}); setErr(null); };
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    setBusy(true);
    try {
      assertValid([
        editing || form.strategy_id ? null : { field: "strategy_id", message: "choose a strategy" },
        editing || form.market_id ? null : { field: "market_id", message: "choose a market" },
        checkAmount("allocation", form.allocation),
        ...checkTrigger(form),
      ]);
      const common = { timeframe: form.timeframe, trader_id: form.trader_id ? Number(form.trader_id) : null, allocation: form.allocation.trim(),
        params: declaring ? declaredParams(decl, texts) : parseParams(form.params), lookback: Number(form.lookback), ...triggerBody(form),
        pinned_version: form.version ? Number(form.version) : null };
      const done = editing ? await api.updateAssignment(editing.id, common)
        : await api.createAssignment({ strategy_id: Number(form.strategy_id), market_id: Number(form.market_id), ...common });
      setSaved(done.warnings?.length ? { id: done.id, warnings: done.warnings } : null);
      cancel();
      list.reload();
    } catch (x) {
      setErr(asApiError(x));
    } finally {
      setBusy(false);
    }
  };
  const act = (p: Promise<unknown>) => { setRowErr(null); p.then(list.reload, (x) => setRowErr(asApiError(x))); };
  const sname = new Map((strategies.data?.items ?? []).map((s) => [s.id, s.name]));
  const mname = new Map((markets.data?.items ?? []).map((m) => [m.id, m.symbol]));
  const tname = new Map((traders.data?.items ?? []).map((t) => [t.id, t.name]));
  const fields = ["strategy_id", "market_id", "timeframe", "trader_id", "allocation", "params", "lookback", "trigger", "min_interval_ms", "max_position", "pinned_version"];
  const base = market?.symbol.split("/")[0];

  return (
    <>
      <PageHead title="Assignments" />
      <div className="grid wide-left">
        <Card title="Running and paused">
          {rowErr && <Alert>{rowErr.message}</Alert>}
          {saved && (
            <div className="warning" role="status" data-testid="saved-warning">
              Assignment #{saved.id} is saved; {saved.warnings.map((w) => w.message).join("; ")}.
              {" "}<button type="button" className="link" onClick={() => setSaved(null)}>Dismiss</button>
            </div>
          )}
          <Loader state={list} empty={(d) => d.items.length === 0 && "No assignments yet: assign a strategy to a market on the right."}>
            {(d) => (
              <div className="scroll-x assign-list">
                <table className="assign-table">
                  <thead><tr><th>Strategy</th><th>Market · account</th><th className="num">Allocation</th><th>Position</th><th>State</th><th /></tr></thead>
                  <tbody data-testid="assignments">
                    {d.items.map((a) => (
                      <tr key={a.id} className={editing?.id === a.id ? "selected" : ""}>
                        <td data-label="Strategy"><span className="nowrap">{sname.get(a.strategy_id) ?? `#${a.strategy_id}`}</span> <VersionTag a={a} />
                          {Object.keys(a.params).length > 0 && <div className="mono small muted">{formatParams(a.params)}</div>}</td>
                        <td data-label="Market · account"><Link className="nowrap" to={`/markets/${a.market_id}?assignment=${a.id}`}>{mname.get(a.market_id) ?? `#${a.market_id}`} · {a.timeframe}</Link>
                          <div className="small">{a.trader_id ? tname.get(a.trader_id) ?? `#${a.trader_id}` : <span className="muted" title="Decisions only, no orders">no account</span>}</div>
                          {triggerLabel(a) && <div className="small muted" data-testid="trigger" title={`on_tick() on the market's best bid and ask, at most once per ${a.min_interval_ms} ms; it keeps quotes on both sides`}>
                            {triggerLabel(a)}{a.max_position && <> · max {fmt(a.max_position, 8)}</>}</div>}</td>
                        <td data-label="Allocation" className="num">{fmt(a.allocation)}
                          {a.trader_id !== null && <div className="small muted nowrap" data-testid="in-use" title={`What its open position cost, of its capital ${fmt(a.capital)} (the allocation and its realized P&L)`}>
                            in use {fmt(a.capital_in_use)}</div>}</td>
                        <td data-label="Position" className="nowrap">{Number(a.position_qty) > 0 ? `${fmt(a.position_qty, 6)} held` : <span className="muted">flat</span>}
                          {Number(a.position_qty) > 0 && <Protection a={a} />}
                          {Number(a.realized_pnl) !== 0 && <div className={`small ${tone(a.realized_pnl)}`}>{signed(a.realized_pnl)} realized</div>}</td>
                        <td data-label="State"><div className="state-cell"><DecisionPill a={a} live={live} />
                          {a.enabled ? <span className="pill ok">running</span> : <span className="pill paused">paused</span>}</div>
                          {!a.enabled && a.paused_reason && <div className="reason" data-testid="paused-reason" title={a.paused_reason}>{a.paused_reason}</div>}</td>
                        <td className="actions"><div className="row-actions">
                          {a.enabled ? <button className="link" onClick={() => act(api.pause(a.id))}>pause</button>
                            : <button className="link" disabled={killed} title={killed ? "Release the kill switch first" : ""} onClick={() => act(api.resume(a.id))}>resume</button>}
                          {a.trader_id !== null && <CloseButton assignmentId={a.id} qty={a.position_qty} symbol={mname.get(a.market_id)} onDone={list.reload} label="close" />}
                          <button className="link" onClick={() => edit(a)}>edit</button>
                          <button className="link danger" onClick={() => confirm("Delete this assignment? Its history goes with it.") && act(api.deleteAssignment(a.id))}>delete</button>
                        </div></td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Loader>
        </Card>
        <Card title={editing ? `Edit assignment #${editing.id}` : "Assign a strategy"}>
          <form onSubmit={submit} className="stack" noValidate>
            <Field label="Strategy" error={err?.forField("strategy_id")}>
              <select name="strategy" value={form.strategy_id} onChange={chooseStrategy} disabled={!!editing}>
                <option value="">Choose…</option>
                {strategies.data?.items.map((s) => <option key={s.id} value={s.id}>{s.name}</option>)}
              </select>
            </Field>
            {form.strategy_id && (
              <Field label="Version" error={err?.forField("pinned_version")}
                hint={form.version ? "Pinned: saving the strategy does not change what this assignment runs" : "Follows the latest: saving the strategy switches it to the new version"}>
                <select name="version" value={form.version} onChange={set("version")}>
                  <option value="">Latest{strategy ? ` (now v${strategy.version})` : ""}</option>
                  {versionList.map((v) => <option key={v.version} value={v.version}>v{v.version} · {time(v.created_at)}</option>)}
                </select>
              </Field>
            )}
            <Field label="Market" error={err?.forField("market_id")}>
              <select name="market" value={form.market_id} onChange={(e) => setForm({ ...form, market_id: e.target.value, trader_id: "" })} disabled={!!editing}>
                <option value="">Choose…</option>
                {markets.data?.items.map((m) => <option key={m.id} value={m.id}>{m.exchange} · {m.symbol}</option>)}
              </select>
            </Field>
            <div className="row">
              <Field label="Timeframe" error={err?.forField("timeframe")}>
                <select name="timeframe" value={form.timeframe} onChange={set("timeframe")}>{(market?.timeframes?.length ? market.timeframes : TIMEFRAMES).map((t) => <option key={t}>{t}</option>)}</select>
              </Field>
              <Field label="Allocation (quote)" error={err?.forField("allocation")}><input name="allocation" inputMode="decimal" value={form.allocation} onChange={set("allocation")} /></Field>
            </div>
            {allocation?.warnings.map((w, i) => <div key={i} className="warning" data-testid="allocation-warning">{w.message}</div>)}
            <Field label="Trigger" error={err?.forField("trigger")}
              hint={form.trigger === "tick" ? "on_tick() on the market's best bid and ask: the strategy keeps post-only quotes on both sides" : "decide() on each closed candle"}>
              <select name="trigger" value={form.trigger} onChange={set("trigger")}>
                <option value="candle">Candle close</option>
                <option value="tick">Tick (quotes)</option>
              </select>
            </Field>
            {form.trigger === "tick" && (
              <div className="row">
                <Field label="Interval (ms)" error={err?.forField("min_interval_ms")} hint="The least time between two evaluations">
                  <input name="min_interval_ms" inputMode="numeric" value={form.min_interval_ms} onChange={set("min_interval_ms")} /></Field>
                <Field label={`Max position${base ? ` (${base})` : ""}`} error={err?.forField("max_position")} hint="The inventory limit; empty: only the allocation limits it">
                  <input name="max_position" inputMode="decimal" value={form.max_position} onChange={set("max_position")} placeholder="optional" /></Field>
              </div>
            )}
            <Field label="Account" error={err?.forField("trader_id")} hint={market && accounts.length === 0 ? <>No account on {market.exchange}: <Link to="/accounts">add one</Link>, or run without orders.</> : "Without an account the strategy decides but places no orders."}>
              <select name="account" value={form.trader_id} onChange={set("trader_id")}>
                <option value="">No account (decisions only)</option>
                {accounts.map((t) => <option key={t.id} value={t.id}>{t.name} ({t.exchange})</option>)}
              </select>
            </Field>
            {declaring ? (
              <fieldset className="params">
                <legend>Parameters <span className="muted small">declared by the strategy</span></legend>
                <ParamFields decl={decl} texts={texts} onChange={setPtexts} err={err} name="assign" />
              </fieldset>
            ) : null}
            <div className="row">
              {!declaring && <Field label="Parameters" error={err?.forField("params")} hint="Overrides the strategy's defaults"><input name="assign-params" value={form.params} onChange={set("params")} placeholder="fast=10, slow=30" spellCheck={false} /></Field>}
              <Field label="Lookback (candles)" error={err?.forField("lookback")}><input name="lookback" inputMode="numeric" value={form.lookback} onChange={set("lookback")} /></Field>
            </div>
            {killed && !editing && <p className="muted small">The kill switch is on: new assignments start paused.</p>}
            {err?.general(fields) && <Alert>{err.message}</Alert>}
            <div className="row end">
              {editing && <button type="button" onClick={cancel}>Cancel</button>}
              <button className="primary" data-testid="create-assignment" disabled={busy}>{editing ? "Save changes" : "Assign"}</button>
            </div>
          </form>
        </Card>
      </div>
    </>
  );
}

/** The strategy version an assignment runs: pinned (a link to that version in the editor), or the latest. */
function VersionTag({ a }: { a: Assignment }) {
  if (a.version === null || a.version === undefined) return null;
  return a.pinned_version ? (
    <span data-testid="version-tag"><Link to={`/strategies/${a.strategy_id}?version=${a.pinned_version}`} className="pill"
      title="Pinned: saving the strategy does not change what it runs (open this version)">v{a.pinned_version} · pinned</Link></span>
  ) : <span className="pill" data-testid="version-tag" title="Follows the latest version: saving the strategy switches it">v{a.version} · latest</span>;
}

/** Parameters from a study's link ("fast=12, slow=40"), as values; null when they do not read. */
function safeParse(text: string): Record<string, unknown> | null {
  try { return parseParams(text); } catch { return null; }
}

/** An open position's protection: where the stop and the target hold it (and whether tradewind watches them). */
function Protection({ a }: { a: Assignment }) {
  const p = a.protection;
  if (!p || (!p.stop && !p.target)) return null;
  return (
    <div className="small" data-testid="protection" title={p.watched ? "The exchange cannot hold these orders: tradewind checks them on every closed candle" : "Held on the exchange as protective orders"}>
      {p.stop && <div className="down">stop {price(p.stop)}</div>}
      {p.target && <div className="up">target {price(p.target)}</div>}
      {p.watched && <div className="muted">watched by tradewind</div>}
    </div>
  );
}
