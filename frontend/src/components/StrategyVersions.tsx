import { useState } from "react";
import { api, type ApiError, type Assignment } from "../api/client";
import { asApiError, parseParams } from "../forms";
import { useLoad } from "../hooks";
import { Link } from "../router";
import { TIMEFRAMES } from "./ui";

const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

/** "Backtest this code": the editor's code as it is now, saved or not, run over a market's history. The run
 *  keeps that code; the strategy's versions stay as they are. */
export function DraftBacktest({ strategyId, code, params }: { strategyId: number; code: string; params: string }) {
  const [open, setOpen] = useState(false);
  const markets = useLoad(() => (open ? api.markets() : Promise.resolve(null)), [open]);
  const [form, setForm] = useState({ market_id: "", timeframe: "5m", from: day(-2) });
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [started, setStarted] = useState<number | null>(null); // the run, linked (not navigated to: the code is unsaved)
  const market = form.market_id || String(markets.data?.items[0]?.id ?? "");
  const run = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    setStarted(null);
    setBusy(true);
    try {
      const res = await api.runBacktest({ strategy_id: strategyId, market_id: Number(market), timeframe: form.timeframe,
        ...(form.from ? { from: `${form.from}T00:00:00Z` } : {}), params: parseParams(params), code });
      setStarted(res.id);
    } catch (x) {
      setErr(asApiError(x));
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="popover-anchor">
      <button type="button" onClick={() => setOpen(!open)} aria-expanded={open} data-testid="backtest-draft"
        title="Run the code in the editor, saved or not, over a market's history">Backtest this code</button>
      {open && (
        <form className="popover stack" onSubmit={run} noValidate data-testid="draft-backtest-form">
          <p className="small muted">The code as it is in the editor, with its default parameters; nothing is saved.</p>
          <div className="row">
            <label className="field"><span>Market</span>
              <select name="draft-market" value={market} onChange={(e) => setForm({ ...form, market_id: e.target.value })}>
                {markets.data?.items.map((m) => <option key={m.id} value={m.id}>{m.exchange} · {m.symbol}</option>)}
              </select></label>
            <label className="field"><span>Timeframe</span>
              <select name="draft-timeframe" value={form.timeframe} onChange={(e) => setForm({ ...form, timeframe: e.target.value })}>
                {TIMEFRAMES.map((t) => <option key={t}>{t}</option>)}
              </select></label>
          </div>
          <label className="field"><span>From</span>
            <input name="draft-from" type="date" value={form.from} onChange={(e) => setForm({ ...form, from: e.target.value })} /></label>
          {started !== null && <p className="notice small" role="status" data-testid="draft-started">
            Backtest #{started} is running on this code: <a href={`/app/backtests/${started}`} target="_blank" rel="noreferrer">open it</a> (in a new tab: the editor keeps your code).</p>}
          {err && <div className="alert" role="alert">{err.errors.find((f) => f.field === "code" && f.line) ? `Line ${err.errors.find((f) => f.field === "code")?.line}: ` : ""}{err.message}</div>}
          <div className="row end">
            <button type="button" onClick={() => setOpen(false)}>Cancel</button>
            <button className="primary" disabled={busy || !market} data-testid="run-draft-backtest">{busy ? "Starting…" : "Run backtest"}</button>
          </div>
        </form>
      )}
    </span>
  );
}

type Named = (a: Assignment) => string;

/** What saving does to the strategy's assignments, said before it is done: those that follow the latest version
 *  switch to the new one, those pinned to a version stay on it. Viewing an older version than the latest, a banner
 *  says so, and which assignments still run it. */
export function VersionBanner({ strategyId, viewing, latest, onLatest }:
  { strategyId: number; viewing: number | null; latest: number | null; onLatest: () => void }) {
  const assignments = useLoad(() => api.assignments(), [strategyId, latest]);
  const markets = useLoad(() => api.markets());
  const mine = (assignments.data?.items ?? []).filter((a) => a.strategy_id === strategyId);
  const symbol = new Map((markets.data?.items ?? []).map((m) => [m.id, m.symbol]));
  const name: Named = (a) => `#${a.id} ${symbol.get(a.market_id) ?? ""} ${a.timeframe}${a.enabled ? "" : " (paused)"}`.replace(/\s+/g, " ");
  const following = mine.filter((a) => !a.pinned_version);
  const pinned = mine.filter((a) => a.pinned_version);
  const old = viewing !== null && latest !== null && viewing !== latest;
  const onThis = pinned.filter((a) => a.pinned_version === viewing);
  const list = (xs: Assignment[]) => xs.map((a) => <Link key={a.id} to={`/markets/${a.market_id}?assignment=${a.id}`}>{name(a)}</Link>)
    .flatMap((x, i) => (i ? [", ", x] : [x]));
  return (
    <>
      {old && (
        <div className="warning old-version" role="status" data-testid="old-version">
          <b>Version {viewing}, not the latest (v{latest}).</b>{" "}
          {onThis.length > 0 ? <>Pinned to it, {onThis.length === 1 ? "this assignment runs" : "these assignments run"} this code: {list(onThis)}. </> : null}
          Saving makes this code a new version, v{latest + 1}.{" "}
          <button type="button" className="link" onClick={onLatest}>Open the latest</button>
        </div>
      )}
      {mine.length > 0 && (
        <p className="muted small version-note" data-testid="version-note">
          {following.length > 0 ? <>Saving a new version switches {following.length === 1 ? "this assignment, which follows" : `these ${following.length} assignments, which follow`} the latest, to it: {list(following)}. </> : <>No assignment follows the latest version: saving changes nothing that runs. </>}
          {pinned.length > 0 && <>Pinned, {pinned.length === 1 ? "this one stays" : "these stay"} on {pinned.length === 1 ? "its" : "their"} version: {pinned.map((a, i) => <span key={a.id}>{i ? ", " : ""}{name(a)} on v{a.pinned_version}</span>)}.</>}
        </p>
      )}
    </>
  );
}
