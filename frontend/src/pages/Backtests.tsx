import { useEffect, useMemo, useState } from "react";
import { api, type ApiError, type Strategy } from "../api/client";
import { CandleChart, EquityChart, PlotLegend, type Focus } from "../components/CandleChart";
import { Alert, Card, Empty, Field, Loader, Loading, PageHead, RunStatus, Stat, TF_SECONDS, fmt, price, signed, time, tone } from "../components/ui";
import { definesFunction, duration, exitsByReason, fillMarkers, isRunning, modeLabel, quotesByDefault, readBacktest, tradeMarkers, type BacktestView, type BtTrade, type QuoteFill, type QuoteMetrics } from "../backtest";
import { ExitPill } from "../components/Orders";
import { exitReasonLabel, orderTypeLabel } from "../orders";
import { snapMarkers, toBars, type Bar } from "../chartdata";
import { RUN_FIELDS, asApiError, assertValid, checkAmount, checkPercent, checkQuoting, checkRun, day, declaredParams, formatParams, paramTexts, parseParams, quotingBody, runBody, runQuotes } from "../forms";
import { ParamFields } from "../components/ParamFields";
import { RunFields, useRunForm } from "../components/RunFields";
import { useLoad } from "../hooks";
import { Link, navigate } from "../router";
import { ExportLinks } from "./Runs";

const NOT_BUILT = "This server has no backtest API yet. Backtests run from the command line meanwhile: tradewind backtest STRATEGY.lua --market ID --timeframe 1h.";
const pct = (v: number | null | undefined) => (v === null || v === undefined ? "—" : `${signed(v)} %`);

export function Backtests() {
  const preset = Number(new URLSearchParams(location.search).get("strategy")) || null;
  const runs = useLoad(() => api.backtests());
  const strategies = useLoad(() => api.strategies());
  const markets = useLoad(() => api.markets());
  const { form, setForm, setField, set } = useRunForm({ strategy_id: preset ? String(preset) : "", market_id: "", timeframe: "1m", from: day(-2), to: "", params: "",
    cash: "10000", fee: "0.1", trigger: "", spread_bps: "", max_position: "", min_interval_ms: "" }, markets.data?.items);
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  // a strategy that declares its parameters gets a field each (from its saved defaults), else the text field
  const [pvals, setPvals] = useState<Record<string, unknown> | null>(null);
  const [ptexts, setPtexts] = useState<Record<string, string>>({});
  const unavailable = runs.error?.status === 404 || runs.error?.status === 405;
  const chooseStrategy = (id: string, list: Strategy[] | undefined) => {
    const s = list?.find((x) => String(x.id) === id);
    setForm((f) => ({ ...f, strategy_id: id, params: s ? formatParams(s.params) : f.params }));
    if (s) { setPvals(s.params); setPtexts({}); }
  };
  useEffect(() => { if (preset && strategies.data) chooseStrategy(String(preset), strategies.data.items); }, [strategies.data]); // eslint-disable-line react-hooks/exhaustive-deps

  // A strategy with on_tick may quote: the trigger then shows, and the quoting fields when the run will quote.
  const chosen = strategies.data?.items.find((s) => String(s.id) === form.strategy_id);
  const code = chosen?.code ?? "";
  const decl = chosen?.declared ?? null;
  const declaring = !!decl && decl.length > 0;
  const texts = declaring ? { ...paramTexts(decl, pvals), ...ptexts } : {};
  const hasOnTick = definesFunction(code, "on_tick");
  const quotes = runQuotes(form, quotesByDefault(code));
  const market = markets.data?.items.find((m) => String(m.id) === form.market_id);
  const base = market?.symbol.split("/")[0];

  const run = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    setBusy(true);
    try {
      assertValid([
        ...checkRun(form),
        checkAmount("cash", form.cash),
        checkPercent("fee", form.fee, 10),
        ...checkQuoting(form, quotes),
      ]);
      const res = await api.runBacktest({
        ...runBody(form),
        params: declaring ? declaredParams(decl, texts) : parseParams(form.params), cash: Number(form.cash), fee: Number(form.fee) / 100,
        ...quotingBody(form, quotes),
      });
      navigate(`/backtests/${res.id}`);
    } catch (x) {
      setErr(asApiError(x));
    } finally {
      setBusy(false);
    }
  };
  const sname = new Map((strategies.data?.items ?? []).map((s) => [s.id, s.name]));
  const mname = new Map((markets.data?.items ?? []).map((m) => [m.id, m.symbol]));
  const fields = [...RUN_FIELDS, "params", "cash", "fee", "trigger", "spread_bps", "max_position", "min_interval_ms"];
  return (
    <>
      <PageHead title="Backtests" />
      <div className="grid wide-left">
        <Card title="Runs">
          {unavailable ? <Empty>{NOT_BUILT}</Empty> : (
            <Loader state={runs} empty={(d) => d.items.length === 0 && "No backtests yet: run one with the form."}>
              {(d) => (
                <div className="scroll-x">
                  <table>
                    <thead><tr><th>#</th><th>Strategy</th><th>Market</th><th>Status</th><th className="num">Return</th><th className="num">Max DD</th><th className="hide-sm">When</th></tr></thead>
                    <tbody data-testid="backtests">
                      {d.items.map((raw) => {
                        const b = readBacktest(raw);
                        return (
                          <tr key={b.id} className="clickable" onClick={() => navigate(`/backtests/${b.id}`)}>
                            <td><Link to={`/backtests/${b.id}`}>#{b.id}</Link></td>
                            <td>{b.strategy_id ? sname.get(b.strategy_id) ?? `#${b.strategy_id}` : "—"}</td>
                            <td className="nowrap">{b.market_id ? mname.get(b.market_id) ?? `#${b.market_id}` : "—"} · {b.timeframe}{b.mode && <span className="muted small" data-testid="run-mode"> · quotes on {b.mode}</span>}</td>
                            <td><RunStatus status={b.status} /></td>
                            <td className={`num ${tone(b.metrics?.return_pct)}`}>{pct(b.metrics?.return_pct)}</td>
                            <td className="num">{b.metrics?.max_drawdown_pct != null ? `${fmt(b.metrics.max_drawdown_pct)} %` : "—"}</td>
                            <td className="muted hide-sm nowrap">{typeof raw.created_at === "string" ? time(raw.created_at) : ""}</td>
                          </tr>
                        );
                      })}
                    </tbody>
                  </table>
                </div>
              )}
            </Loader>
          )}
        </Card>
        <Card title="Run a backtest">
          <form onSubmit={run} className="stack" noValidate>
            <RunFields name="bt" form={form} err={err} strategies={strategies.data?.items} markets={markets.data?.items} toHint="Empty: up to the last candle"
              onChange={(field, value) => (field === "strategy_id" ? chooseStrategy(value, strategies.data?.items) : setField(field, value))} />
            {declaring ? (
              <fieldset className="params">
                <legend>Parameters <span className="muted small">declared by the strategy</span></legend>
                <ParamFields decl={decl} texts={texts} onChange={setPtexts} err={err} name="bt" />
              </fieldset>
            ) : <Field label="Parameters" error={err?.forField("params")}><input name="bt-params" value={form.params} onChange={set("params")} placeholder="fast=10, slow=30" spellCheck={false} /></Field>}
            <div className="row">
              <Field label="Starting cash (quote)" error={err?.forField("cash")}><input name="bt-cash" inputMode="decimal" value={form.cash} onChange={set("cash")} /></Field>
              <Field label="Fee (%)" error={err?.forField("fee")}><input name="bt-fee" inputMode="decimal" value={form.fee} onChange={set("fee")} /></Field>
            </div>
            {(hasOnTick || form.trigger === "tick") && (
              <Field label="Trigger" error={err?.forField("trigger")}
                hint={quotes ? "on_tick() and the quotes it keeps: on the market's stored ticks in the range, or without any on its candles" : "decide() on each closed candle"}>
                <select name="bt-trigger" value={form.trigger} onChange={set("trigger")}>
                  <option value="">{quotesByDefault(code) ? "Tick (quotes): the strategy has on_tick only" : "Candle close: the strategy has decide"}</option>
                  <option value="candle">Candle close (decide)</option>
                  <option value="tick">Tick (on_tick quotes)</option>
                </select>
              </Field>
            )}
            {quotes && (
              <>
                <div className="row" data-testid="quoting-fields">
                  <Field label="Spread (bps)" error={err?.forField("spread_bps")} hint="Without stored ticks: the book assumed around each close (default 2)">
                    <input name="bt-spread-bps" inputMode="decimal" value={form.spread_bps} onChange={set("spread_bps")} placeholder="2" /></Field>
                  <Field label="Interval (ms)" error={err?.forField("min_interval_ms")} hint="On ticks: the least time between two evaluations (default 1000)">
                    <input name="bt-min-interval" inputMode="numeric" value={form.min_interval_ms} onChange={set("min_interval_ms")} placeholder="1000" /></Field>
                </div>
                <Field label={`Max position${base ? ` (${base})` : ""}`} error={err?.forField("max_position")} hint="The inventory limit; empty: only the cash limits it">
                  <input name="bt-max-position" inputMode="decimal" value={form.max_position} onChange={set("max_position")} placeholder="optional" /></Field>
              </>
            )}
            <p className="muted small">{quotes
              ? "Same sandbox and quote rules as live trading: post-only quotes that fill whole, at their price, when the market trades through them."
              : "Same sandbox and fill rule as live trading: a decision at a candle's close fills at the next candle's open."}</p>
            {err?.general(fields) && <Alert>{err.status === 404 || err.status === 405 ? NOT_BUILT : err.message}</Alert>}
            <button className="primary" data-testid="run-backtest" disabled={busy || unavailable}>{busy ? "Starting…" : "Run backtest"}</button>
          </form>
        </Card>
      </div>
    </>
  );
}

export function BacktestPage({ id }: { id: number }) {
  const [b, setB] = useState<BacktestView | null>(null);
  const [err, setErr] = useState<ApiError | null>(null);
  const [bars, setBars] = useState<Bar[] | null>(null);
  const strategies = useLoad(() => api.strategies());
  const markets = useLoad(() => api.markets());
  const [focus, setFocus] = useState<Focus | null>(null); // a trade clicked in the table: the chart moves to it
  const showTrade = (t: BtTrade) => {
    setFocus({ time: t.entry_time, key: Date.now() });
    document.querySelector("[data-testid=trades-chart]")?.scrollIntoView({ behavior: "smooth", block: "center" });
  };

  useEffect(() => {
    let stop = false;
    let timer: ReturnType<typeof setTimeout>;
    const poll = () => api.backtest(id).then((raw) => {
      if (stop) return;
      const v = readBacktest(raw);
      setB(v);
      if (isRunning(v)) timer = setTimeout(poll, 1000);
    }, (x) => !stop && setErr(asApiError(x)));
    poll();
    return () => { stop = true; clearTimeout(timer); };
  }, [id]);

  // The candles the run covered, for the trades on the chart (at most the 5000 the API sends at once).
  const done = b !== null && !isRunning(b);
  useEffect(() => {
    if (!b || !done || !b.market_id) return;
    const end = b.to ?? b.curve[b.curve.length - 1]?.time ?? null;
    const q = end ? (end + 1) * 1000 : undefined;
    api.candles(b.market_id, b.timeframe, 5000, q).then((c) => {
      const start = b.from ?? b.curve[0]?.time ?? 0;
      setBars(toBars(c).filter((x) => x.time >= start));
    }, () => setBars([]));
  }, [done, b?.market_id, b?.timeframe]); // eslint-disable-line react-hooks/exhaustive-deps

  const markers = useMemo(() => (b && bars ? snapMarkers(b.mode ? fillMarkers(b.fills) : tradeMarkers(b.trades), bars, TF_SECONDS[b.timeframe] ?? 60) : []), [b, bars]);
  if (err) return <Alert>{err.status === 404 ? "This backtest does not exist, or is not yours." : err.message} <Link to="/backtests">All backtests</Link></Alert>;
  if (!b) return <Loading />;
  const m = b.metrics;
  const strategy = strategies.data?.items.find((s) => s.id === b.strategy_id);
  const market = markets.data?.items.find((x) => x.id === b.market_id);
  const cash = m?.final_equity != null && m.return_pct != null ? m.final_equity / (1 + m.return_pct / 100) : undefined;
  return (
    <>
      <PageHead title={`Backtest #${b.id}`}>
        <RunStatus status={b.status} />
        {!isRunning(b) && b.status === "done" && <ExportLinks kind="backtest" id={b.id} />}
        <Link className="button" to={`/backtests?strategy=${b.strategy_id ?? ""}`}>Run again</Link>
      </PageHead>
      <p className="muted subtitle">
        {strategy ? <Link to={`/strategies/${strategy.id}`}>{strategy.name}</Link> : `strategy #${b.strategy_id}`}
        {b.draft && <> <span className="pill" data-testid="draft-run" title="The editor's code when it was run, not a saved version">unsaved code</span></>} on {market ? `${market.exchange} · ${market.symbol}` : `market #${b.market_id}`} · {b.timeframe}
        {b.from ? ` · from ${time(b.from * 1000)}` : ""}{b.to ? ` to ${time(b.to * 1000)}` : ""}
        {Object.keys(b.params).length ? <> · <span className="mono">{formatParams(b.params)}</span></> : null}
      </p>
      {b.range && (
        <p className="muted small subtitle" data-testid="run-range" title="The data this run used: candles stored up to the end of its range (when none was given, the moment it was submitted)">
          Ran over {fmt(b.range.candles, 0)} {b.quoting?.mode === "ticks" ? "ticks" : "candles"}{b.range.first !== null && b.range.last !== null ? <> from {time(b.range.first * 1000)} to {time(b.range.last * 1000)}</> : null}
          {b.range.to !== null && <> · data up to {time(b.range.to * 1000)}</>}
        </p>
      )}
      {b.quoting && <p className="subtitle" data-testid="quote-mode"><span className="pill">quotes</span> on {modeLabel(b.quoting)}</p>}
      {isRunning(b) && <Card><Loading label={b.status === "queued" ? "Waiting for a worker…" : "Running…"} /></Card>}
      {b.error && <Alert>{b.error}{b.quoting?.errorTime != null && b.quoting.mode === "ticks" ? ` (at the tick of ${time(b.quoting.errorTime * 1000)})` : ""}</Alert>}
      {m && b.quoting && <QuoteStats m={m} q={b.quoting} />}
      {m && !b.quoting && (
        <div className="stats" data-testid="metrics">
          <Stat label="Return" value={pct(m.return_pct)} tone={tone(m.return_pct)} />
          <Stat label="Final equity" value={fmt(m.final_equity)} />
          <Stat label="Max drawdown" value={m.max_drawdown_pct != null ? `${fmt(m.max_drawdown_pct)} %` : "—"} tone={m.max_drawdown_pct ? "down" : ""} />
          <Stat label="Sharpe" value={fmt(m.sharpe)} />
          <Stat label="Win rate" value={m.win_rate != null ? `${fmt(m.win_rate, 1)} %` : "—"} />
          <Stat label="Profit factor" value={m.profit_factor != null ? fmt(m.profit_factor) : "—"} />
          <Stat label="Trades" value={m.trades} />
          <Stat label="Avg trade" value={duration(m.avg_trade_duration_s)} />
          <Stat label="Fees paid" value={fmt(m.fees_paid)} />
          <Stat label="Buy and hold" value={pct(m.buy_and_hold_return_pct)} tone={tone(m.buy_and_hold_return_pct)} />
          <Stat label="Candles" value={fmt(m.candles, 0)} />
        </div>
      )}
      {done && (
        <>
          <Card title="Equity and drawdown">
            {b.curve.length ? <EquityChart curve={b.curve} cash={cash} hold={b.hold} /> : <Empty>No equity curve in this run.</Empty>}
          </Card>
          <Card title={b.mode ? "Fills on the chart" : "Trades on the chart"} actions={<PlotLegend plots={b.plot} />}>
            <div data-testid="trades-chart">
              {bars === null ? <Loading /> : bars.length === 0 ? <Empty>The candles of this run are not stored any more.</Empty> : <CandleChart bars={bars} markers={markers} plots={b.plot} focus={focus} />}
            </div>
          </Card>
          {b.mode ? <Fills fills={b.fills} notes={b.quoting?.notes ?? []} /> : <Card title={`Trades (${b.trades.length})`}>
            {b.trades.length === 0 ? <Empty>The strategy never entered a position.</Empty> : (
              <>
                <ExitSummary trades={b.trades} />
                <div className="scroll-x">
                  <table>
                    <thead><tr><th>Entry</th><th>Entry type</th><th className="num">Price</th><th>Exit</th><th>Exit reason</th><th className="num">Price</th><th className="num">Qty</th><th className="num">P&L</th><th className="num">P&L %</th><th className="num hide-sm">Duration</th><th className="num hide-sm">Fees</th></tr></thead>
                    <tbody data-testid="trades">
                      {b.trades.slice(-200).reverse().map((t, i) => {
                        const open = t.exit_time === null || t.exit_reason === "end";
                        return (
                          <tr key={i} className={`clickable${focus?.time === t.entry_time ? " focused" : ""}`} onClick={() => showTrade(t)} title="Show this trade on the chart">
                            <td className="nowrap">{time(t.entry_time * 1000)}</td>
                            <td className="muted" data-testid="entry-type">{t.entry_type ? orderTypeLabel(t.entry_type) : "—"}</td>
                            <td className="num">{price(t.entry_price)}</td>
                            <td className="nowrap">{open ? <span className="pill open" title={t.exit_reason === "end" ? "Still open at the last candle: valued at its close" : ""}>open</span> : time(t.exit_time! * 1000)}</td>
                            <td>{t.exit_reason === "end" ? <span className="muted small">at the end</span> : t.exit_reason ? <ExitPill reason={t.exit_reason} /> : <span className="muted">—</span>}</td>
                            <td className="num">{price(t.exit_price)}</td>
                            <td className="num">{fmt(t.qty, 6)}</td><td className={`num ${tone(t.pnl)}`}>{signed(t.pnl)}</td>
                            <td className={`num ${tone(t.pnl_pct)}`}>{t.pnl_pct != null ? `${signed(t.pnl_pct)} %` : "—"}</td>
                            <td className="num hide-sm nowrap">{t.exit_time !== null ? duration(t.exit_time - t.entry_time) : "—"}</td>
                            <td className="num hide-sm">{t.fees != null ? fmt(t.fees) : "—"}</td>
                          </tr>
                        );
                      })}
                    </tbody>
                  </table>
                </div>
              </>
            )}
          </Card>}
        </>
      )}
    </>
  );
}

/** A quoting run's numbers: how it did, and how its quotes did. */
function QuoteStats({ m, q }: { m: NonNullable<BacktestView["metrics"]>; q: QuoteMetrics }) {
  return (
    <div className="stats" data-testid="metrics">
      <Stat label="Return" value={pct(m.return_pct)} tone={tone(m.return_pct)} />
      <Stat label="Final equity" value={fmt(m.final_equity)} />
      <Stat label="Max drawdown" value={m.max_drawdown_pct != null ? `${fmt(m.max_drawdown_pct)} %` : "—"} tone={m.max_drawdown_pct ? "down" : ""} />
      <Stat label="Realized P&L" value={signed(q.realizedPnl)} tone={tone(q.realizedPnl)} />
      <Stat label="Fees" value={fmt(q.fees)} />
      <Stat label="Quotes placed" value={<span title={`buy ${q.placedBuy}, sell ${q.placedSell}`}>{fmt(q.placed, 0)}</span>} />
      {q.refused > 0 && <Stat label="Refused (would take)" value={fmt(q.refused, 0)} />}
      <Stat label="Quote fills (buy / sell)" value={<span data-testid="quote-fills">{fmt(q.fillsBuy, 0)} / {fmt(q.fillsSell, 0)}</span>} />
      <Stat label="Fill rate" value={q.fillRatePct != null ? `${fmt(q.fillRatePct, 1)} %` : "—"} />
      {q.marketOrders > 0 && <Stat label="Market orders" value={fmt(q.marketOrders, 0)} />}
      <Stat label="Final inventory" value={fmt(q.inventory, 8)} />
      <Stat label="Evaluations" value={fmt(q.evaluations, 0)} />
      <Stat label={q.mode === "ticks" ? "Ticks" : "Candles"} value={fmt(q.steps, 0)} />
    </div>
  );
}

/** A quoting run's fills, newest first: a quote's, or a market order's when on_tick took a position. */
function Fills({ fills, notes }: { fills: QuoteFill[]; notes: string[] }) {
  return (
    <Card title={`Fills (${fills.length})`}>
      {notes.map((n, i) => <p key={i} className="muted small" data-testid="quote-note">{n}</p>)}
      {fills.length === 0 ? <Empty>No quote filled: the market never traded through one.</Empty> : (
        <div className="scroll-x">
          <table>
            <thead><tr><th>Time</th><th>Kind</th><th>Side</th><th className="num">Price</th><th className="num">Amount</th><th className="num">Fee</th><th className="num">P&L</th></tr></thead>
            <tbody data-testid="fills">
              {fills.slice(-200).reverse().map((f, i) => (
                <tr key={i} data-kind={f.kind}>
                  <td className="nowrap">{time(f.time * 1000)}</td>
                  <td>{f.kind === "quote" ? <span className="pill" title="A post-only quote, filled whole at its price with the maker fee">quote</span> : <span className="pill open" title="on_tick returned a position: taken at the market, with the taker fee">market</span>}</td>
                  <td className={f.side === "buy" ? "up" : "down"}>{f.side}</td>
                  <td className="num">{price(f.price)}</td>
                  <td className="num">{fmt(f.amount, 8)}</td>
                  <td className="num">{fmt(f.fee, 6)}</td>
                  <td className={`num ${tone(f.pnl)}`}>{f.pnl === null ? "" : signed(f.pnl)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {fills.length > 200 && <p className="muted small">The last 200 of {fills.length.toLocaleString("en-US")} fills.</p>}
        </div>
      )}
    </Card>
  );
}

/** How the run's trades ended: count, wins and P&L per exit reason (signal, stop-loss, take-profit, …). */
function ExitSummary({ trades }: { trades: BtTrade[] }) {
  const groups = exitsByReason(trades);
  if (!groups.length) return null;
  return (
    <div className="exit-summary scroll-x">
      <table>
        <thead><tr><th>Exit</th><th className="num">Trades</th><th className="num">Won</th><th className="num">P&L</th></tr></thead>
        <tbody data-testid="exits-by-reason">
          {groups.map((g) => (
            <tr key={g.reason} data-reason={g.reason}>
              <td>{g.reason === "end" || g.reason === "open" || g.reason === "unknown" ? <span className="muted">{exitReasonLabel(g.reason)}</span> : <ExitPill reason={g.reason} />}</td>
              <td className="num">{g.count}</td><td className="num">{g.wins}</td>
              <td className={`num ${tone(g.pnl)}`}>{signed(g.pnl)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
