import { useEffect, useMemo, useRef, useState } from "react";
import { api, type Assignment, type Evaluation, type Latency, type Market, type Order, type Quotes } from "../api/client";
import type { Subscribe, Watch } from "../App";
import { CandleChart, PlotLegend } from "../components/CandleChart";
import { CloseButton } from "../components/Close";
import { OpenOrders, OrderKind, SizeNote } from "../components/Orders";
import { QuotePanel, TopOfBook } from "../components/Quotes";
import { Alert, Card, Empty, Loading, PageHead, TF_SECONDS, TIMEFRAMES, When, fmt, price, time } from "../components/ui";
import { mergeBar, plotSeries, protectionLines, snapMarkers, toBars, toMarkers, type Bar } from "../chartdata";
import { asApiError } from "../forms";
import { useLoad, useThrottled } from "../hooks";
import { openOrders } from "../orders";
import { batcher, isTickAssignment, quoteLines } from "../quotes";
import { Link, navigate } from "../router";
import { priceKey, type LiveState } from "../stream";
import { CLOCK_NOTE } from "../time";

type QuoteState = Record<number, { data: Quotes | null; error: string | null }>;

export function MarketPage({ id, subscribe, watch, live }: { id: number; subscribe: Subscribe; watch: Watch; live: LiveState }) {
  const query = new URLSearchParams(location.search);
  const assignmentId = Number(query.get("assignment")) || null;
  // ?at=<epoch ms>: a trade clicked in the trades view; the chart opens on it (its candles loaded if older)
  const at = Number(query.get("at")) || null;
  const [past, setPast] = useState(false); // showing older candles than the newest: live ones are not added
  // Reloaded as fills and decisions arrive: a position's protection (the stop and target lines) moves with them.
  const tick = useThrottled(live.activity, 1500);
  const assignments = useLoad(() => api.assignments(), [tick]);
  const mine = (assignments.data?.items ?? []).filter((a) => a.market_id === id);
  const assignment = mine.find((a) => a.id === assignmentId) ?? null;
  const [tf, setTf] = useState<string | null>(null);
  const shownTf = tf ?? assignment?.timeframe ?? "1m";
  const [bars, setBars] = useState<Bar[] | null>(null);
  const [evals, setEvals] = useState<Evaluation[]>([]);
  const [orders, setOrders] = useState<Order[]>([]);
  const [resting, setResting] = useState<Order[]>([]); // what rests on the exchange (status=open), however old
  const [market, setMarket] = useState<Market | null>(null);
  const [latency, setLatency] = useState<Latency | null>(null);
  const [err, setErr] = useState<string | null>(null);
  // Each quoting (tick) assignment's book, from GET /api/assignments/{id}/quotes.
  const quoting = mine.filter(isTickAssignment);
  const quotingKey = quoting.map((a) => a.id).join(",");
  const quotingIds = useRef<number[]>([]);
  quotingIds.current = quoting.map((a) => a.id);
  const [quotes, setQuotes] = useState<QuoteState>({});
  const [expanded, setExpanded] = useState<Set<number>>(new Set()); // decision rows showing their logs and error
  const toggle = (eid: number) => setExpanded((x) => { const n = new Set(x); if (!n.delete(eid)) n.add(eid); return n; });
  const loadQuotes = (ids: number[]) => {
    for (const qid of ids) {
      api.quotes(qid).then(
        (d) => setQuotes((q) => ({ ...q, [qid]: { data: d, error: null } })),
        (x) => setQuotes((q) => ({ ...q, [qid]: { data: q[qid]?.data ?? null, error: asApiError(x).message } })),
      );
    }
  };

  useEffect(() => { api.market(id).then(setMarket, (x) => setErr(asApiError(x).message)); }, [id]);
  // This market's candles (every timeframe) and its ticks; every market's candles again when leaving.
  useEffect(() => { watch([{ market_id: id }]); return () => watch([]); }, [id, watch]);
  useEffect(() => {
    const ids = quotingKey ? quotingKey.split(",").map(Number) : [];
    setQuotes((q) => Object.fromEntries(Object.entries(q).filter(([k]) => ids.includes(Number(k)))));
    loadQuotes(ids);
  }, [quotingKey]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (assignmentId && !assignments.data) return; // wait to know the assignment's timeframe
    setBars(null);
    setPast(false);
    api.candles(id, shownTf, 500).then((c) => {
      const latest = toBars(c);
      if (at === null || !latest.length || at / 1000 >= latest[0].time) return setBars(latest);
      // the trade is older than the newest candles: the candles around it
      setPast(true);
      return api.candles(id, shownTf, 500, at + 250 * (TF_SECONDS[shownTf] ?? 60) * 1000).then((old) => setBars(toBars(old)));
    }).catch((x) => setErr(asApiError(x).message));
  }, [id, shownTf, assignmentId, at, !!assignments.data]); // eslint-disable-line react-hooks/exhaustive-deps
  const refreshActivity = () => {
    if (!assignmentId) { setEvals([]); setOrders([]); setResting([]); setLatency(null); return; }
    api.evaluations(assignmentId, 500).then((p) => setEvals(p.items), () => {});
    api.orders({ assignment_id: assignmentId, limit: 200 }).then((p) => setOrders(p.items), () => {});
    api.orders({ assignment_id: assignmentId, status: "open", limit: 200 }).then((p) => setResting(p.items), () => {});
    api.latency(assignmentId).then(setLatency, () => {});
  };
  useEffect(refreshActivity, [assignmentId]); // eslint-disable-line react-hooks/exhaustive-deps
  // Order and fill events come in bursts (a quoting strategy replaces both its quotes at once), and a tick
  // assignment decides every second or so: reload once per burst, and its decisions at most every 1.5 s.
  const later = useRef<{ activity: ReturnType<typeof batcher>; quotes: ReturnType<typeof batcher> } | null>(null);
  const tickSelected = !!assignment && isTickAssignment(assignment);
  useEffect(() => {
    const b = { activity: batcher(() => refreshActivity(), tickSelected ? 1500 : 400),
      quotes: batcher((ids) => loadQuotes(ids.filter((x) => quotingIds.current.includes(x))), 750) };
    later.current = b;
    return () => { b.activity.cancel(); b.quotes.cancel(); };
  }, [assignmentId, tickSelected]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => subscribe((ev) => {
    if (ev.type === "candle" && !past && market && ev.exchange === market.exchange && ev.symbol === market.symbol && ev.tf === shownTf) {
      setBars((b) => (b ? mergeBar(b, { time: Math.floor(ev.time / 1000), open: ev.open, high: ev.high, low: ev.low, close: ev.close, volume: ev.volume }) : b));
    }
    if ((ev.type === "evaluation" || ev.type === "fill" || ev.type === "order") && ev.assignment_id === assignmentId && assignmentId) later.current?.activity.add(assignmentId);
    if ((ev.type === "fill" || ev.type === "order") && ev.assignment_id !== null && quotingIds.current.includes(ev.assignment_id)) later.current?.quotes.add(ev.assignment_id);
    // A fill opens or closes a protected position: redraw its lines now (quotes have no protection: their
    // orders come often, and the list reloads with the page's activity anyway).
    if ((ev.type === "fill" || ev.type === "order") && ev.order_type !== "quote") assignments.reload();
  }), [market, shownTf, assignmentId, past]); // eslint-disable-line react-hooks/exhaustive-deps

  const fillTf = TF_SECONDS[assignment?.timeframe ?? shownTf];
  const markers = useMemo(() => (bars ? snapMarkers(toMarkers(evals, orders, fillTf), bars, TF_SECONDS[shownTf]) : []), [evals, orders, bars, fillTf, shownTf]);
  // The strategy's own series, on the timeframe it decides on (another timeframe's candles would not line up).
  const plots = useMemo(() => (assignment && shownTf === assignment.timeframe ? plotSeries(evals) : {}), [evals, assignment?.timeframe, shownTf]); // eslint-disable-line react-hooks/exhaustive-deps
  const focus = useMemo(() => (at !== null ? { time: Math.floor(at / 1000), key: at } : null), [at]);
  const lineList = protectionLines(assignments.data?.items ?? [], id);
  const lineKey = JSON.stringify(lineList);
  const protection = useMemo(() => lineList, [lineKey]); // eslint-disable-line react-hooks/exhaustive-deps
  const quoteList = quoteLines(quoting.map((a) => quotes[a.id]?.data).filter((d): d is Quotes => !!d));
  const quoteKey = JSON.stringify(quoteList);
  const quoted = useMemo(() => quoteList, [quoteKey]); // eslint-disable-line react-hooks/exhaustive-deps
  const lines = useMemo(() => [...protection, ...quoted], [protection, quoted]);
  const watched = [...new Set(protection.filter((l) => l.watched).map((l) => l.assignment_id))];
  const fills = orders.filter((o) => o.status === "filled");
  const open = openOrders(resting);
  const last = market ? live.prices[priceKey(market.exchange, market.symbol)] ?? market.last_price : null;
  const pick = (e: React.ChangeEvent<HTMLSelectElement>) => { setTf(null); navigate(`/markets/${id}${e.target.value ? `?assignment=${e.target.value}` : ""}`); };

  if (err && !market) return <Alert>{err}</Alert>;
  return (
    <>
      <PageHead title={market ? market.symbol : "Market"}>
        {market && <span className="muted">{market.exchange}</span>}
        {last !== null && <span title="The last candle's close" className={`big-price ${market ? live.moves[priceKey(market.exchange, market.symbol)] ?? "" : ""}`} data-testid="last-price">{price(last)}</span>}
      </PageHead>
      <TopOfBook market={market} marketId={id} subscribe={subscribe} />
      {assignment && <AssignmentState a={assignment} symbol={market?.symbol} onChange={() => { assignments.reload(); refreshActivity(); }} />}
      <Card className="chart-card" title={
        <select className="inline" aria-label="Assignment" value={assignmentId ?? ""} onChange={pick} data-testid="assignment-picker">
          <option value="">Candles only</option>
          {mine.map((a) => <option key={a.id} value={a.id}>Assignment #{a.id} · {isTickAssignment(a) ? "tick" : a.timeframe}</option>)}
        </select>
      } actions={
        <div className="segmented">{TIMEFRAMES.map((t) => <button key={t} className={t === shownTf ? "on" : ""} onClick={() => setTf(t)}>{t}</button>)}</div>
      }>
        {err && <Alert>{err}</Alert>}
        {past && <div className="notice" role="status" data-testid="past-view">Showing the candles around {time(at!)} (market clock).{" "}
          <button className="link" onClick={() => navigate(`/markets/${id}${assignmentId ? `?assignment=${assignmentId}` : ""}`)}>Back to the newest</button></div>}
        {bars === null ? <div className="chart"><Loading /></div> : bars.length === 0 ? <div className="chart"><Empty>No {shownTf} candles stored for this market yet.</Empty></div> : <CandleChart bars={bars} markers={markers} lines={lines} plots={plots} focus={focus} />}
        <div className="legend muted">
          <PlotLegend plots={plots} />
          {assignmentId ? <><span className="key up">▲</span> long <span className="key down">▼</span> short <span className="key fill">●</span> fill at its price <span className="key error">●</span> error</>
            : mine.length ? "Choose one of your assignments above to see its decisions and fills." : "None of your assignments trades this market."}
          {protection.length > 0 && <span data-testid="protection-legend"><span className="key down">┅</span> stop <span className="key up">┅</span> target of an open position
            {watched.length > 0 && <span className="muted" title="The exchange cannot hold these order types: tradewind checks them on every closed candle and exits at the market">
              {" "}(#{watched.join(", #")} watched by tradewind)</span>}</span>}
          {quoted.length > 0 && <span data-testid="quote-legend"><span className="key up">━</span> bid quote <span className="key down">━</span> ask quote</span>}
        </div>
      </Card>
      {quoting.length > 0 && (
        <div className="grid" data-testid="quote-panels">
          {quoting.map((a) => <QuotePanel key={a.id} a={a} data={quotes[a.id]?.data ?? null} error={quotes[a.id]?.error ?? null}
            selected={a.id === assignmentId} onSelect={() => { setTf(null); navigate(`/markets/${id}?assignment=${a.id}`); }} />)}
        </div>
      )}
      {assignmentId && (
        <div className="grid">
          <Card title="Decisions" actions={latency && <LatencyNote latency={latency} />}>
            {evals.length === 0 ? <Empty>{tickSelected ? "Waiting for the next tick…" : "Waiting for the next closed candle…"}</Empty> : (
              <table>
                <thead><tr><th title={CLOCK_NOTE.market}>Candle (market clock)</th><th>Decision</th><th className="num" title="The time the strategy took to decide">eval ms</th></tr></thead>
                <tbody data-testid="decisions">
                  {evals.slice(0, 12).map((e) => <DecisionRow key={e.id} e={e} open={expanded.has(e.id)} toggle={() => toggle(e.id)} />)}
                </tbody>
              </table>
            )}
          </Card>
          <Card title={`Open orders${open.length ? ` (${open.length})` : ""}`}>
            <OpenOrders orders={open} empty={assignment?.trader_id === null ? "This assignment has no account: it places no orders." : undefined} />
          </Card>
          <Card title="Fills">
            {fills.length === 0 ? <Empty>{assignment?.trader_id === null ? "This assignment has no account: it decides, but places no orders." : "No fills yet."}</Empty> : (
              <table>
                <thead><tr><th title={CLOCK_NOTE.wall}>Placed</th><th>Side</th><th>Type</th><th className="num">Qty</th><th className="num">Price</th></tr></thead>
                <tbody data-testid="fills">
                  {fills.slice(0, 12).map((o) => (
                    <tr key={o.id}><td className="muted nowrap"><When t={o.created_at} note={o.candle_time ? `on the candle of ${time(o.candle_time)} (market clock)` : undefined} /></td><td className={o.side === "buy" ? "up" : "down"}>{o.side}</td>
                      <td><OrderKind o={o} /></td><td className="num">{fmt(o.filled, 6)}<SizeNote o={o} /></td><td className="num">{price(o.price)}</td></tr>
                  ))}
                </tbody>
              </table>
            )}
          </Card>
        </div>
      )}
    </>
  );
}

/** One decision; clicked, it opens to what the strategy printed (print()) and its whole error. */
function DecisionRow({ e, open, toggle }: { e: Evaluation; open: boolean; toggle: () => void }) {
  const lines = e.logs?.length ?? 0;
  return (
    <>
      <tr className="expandable" onClick={toggle} aria-expanded={open} data-testid="decision-row" title={open ? "Hide the details" : "Show what it printed and its whole error"}>
        <td className="muted nowrap"><span aria-hidden>{open ? "▾" : "▸"}</span> <When t={e.candle_time} clock="market" /></td>
        <td>{e.status === "ok" ? <span className={`pill ${e.position}`}>{e.position}</span> : <span className="pill error" title={e.error ?? ""}>error</span>}
          {lines > 0 && <span className="muted small" data-testid="log-count"> · {lines} printed line{lines === 1 ? "" : "s"}</span>}
          {e.error && !open && <div className="reason">{e.error.slice(0, 160)}{e.error.length > 160 ? "…" : ""}</div>}
          {e.note && <div className="muted small" data-testid="decision-note">{e.note.slice(0, 160)}</div>}</td>
        <td className="num">{fmt(e.duration_ms, 3)}</td>
      </tr>
      {open && (
        <tr className="detail" data-testid="decision-detail">
          <td colSpan={3}>
            {e.error && <div className="reason pre" data-testid="decision-error">{e.error}</div>}
            {e.note && <div className="small">{e.note}</div>}
            {lines > 0 ? <pre className="logs" data-testid="decision-logs">{e.logs.join("\n")}</pre>
              : <div className="muted small">Nothing printed: <code>print()</code> in the strategy writes here.</div>}
            <div className="muted small">Decided in {fmt(e.duration_ms, 3)} ms{e.latency_ms !== null && e.latency_ms !== undefined ? `, ${fmt(e.latency_ms, 1)} ms after the candle reached tradewind` : ""}.</div>
          </td>
        </tr>
      )}
    </>
  );
}

/** The chosen assignment's state: running or paused (and why), what it holds; pause, resume, close its position. */
function AssignmentState({ a, symbol, onChange }: { a: Assignment; symbol?: string; onChange: () => void }) {
  const [err, setErr] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const act = (p: Promise<unknown>) => {
    setErr(null);
    setBusy(true);
    p.then(onChange, (x) => setErr(asApiError(x).message)).finally(() => setBusy(false));
  };
  const held = Number(a.position_qty) > 0;
  return (
    <section className="card state-bar" data-testid="assignment-state">
      <b>Assignment #{a.id}</b>
      {a.enabled ? <span className="pill ok">running</span> : <span className="pill paused">paused</span>}
      {!a.enabled && a.paused_reason && <span className="reason" data-testid="paused-reason">{a.paused_reason}</span>}
      <span className="muted">{held ? `holds ${fmt(a.position_qty, 8)} ${symbol?.split("/")[0] ?? ""}` : "flat"}</span>
      <span className="row">
        {a.enabled ? <button className="small" disabled={busy} onClick={() => act(api.pause(a.id))}>Pause</button>
          : <button className="small primary" disabled={busy} onClick={() => act(api.resume(a.id))}>Resume</button>}
        {a.trader_id !== null && <CloseButton assignmentId={a.id} qty={a.position_qty} symbol={symbol} onDone={onChange} className="small danger" />}
        {a.trader_id !== null && <Link className="button small" to={`/trades?assignment=${a.id}`}>Trades</Link>}
      </span>
      {err && <div className="alert" role="alert">{err}</div>}
    </section>
  );
}

/** How long this assignment's candles took to become a decision and an order call (its last 500). */
function LatencyNote({ latency }: { latency: Latency }) {
  const d = latency.tick_to_decision, o = latency.tick_to_order_call;
  if (!d.count) return null;
  const ms = (x: number | null) => (x === null ? "–" : `${x < 10 ? x.toFixed(1) : Math.round(x)} ms`);
  return (
    <span className="muted small" data-testid="latency"
      title={`Median and 99th percentile from the candle reaching tradewind: to the decision over ${d.count} evaluations, to the order call over ${o.count} orders`}>
      candle → decision {ms(d.p50_ms)} (p99 {ms(d.p99_ms)}){o.count > 0 && <> · → order {ms(o.p50_ms)} (p99 {ms(o.p99_ms)})</>}
    </span>
  );
}
