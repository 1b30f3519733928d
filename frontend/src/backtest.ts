// A backtest run as the page shows it, read from GET /api/backtests/{id}.
// The reader accepts the engine's report as it is nested in the API answer (`result`: the
// `tradewind backtest --json` document plus the equity curve) or flattened (`metrics`, `trades`,
// `equity`), and times as epoch ms, epoch seconds or ISO 8601, so the page does not break on either.
// A quoting run (on_tick) has a `mode` (ticks, or candles with a synthetic spread), `fills` instead of
// trades, and the metrics of `tradewind backtest --json` for a quoting strategy.
import { readPlot, type Marker, type PlotSeries } from "./chartdata";
import { EXIT_ORDER } from "./orders";

export interface Metrics {
  final_equity: number | null;
  return_pct: number | null;
  max_drawdown_pct: number | null;
  sharpe: number | null;
  win_rate: number | null;
  candles: number | null;
  duration_s: number | null;
  trades: number;
  profit_factor: number | null;
  avg_trade_duration_s: number | null;
  fees_paid: number | null;
  buy_and_hold_return_pct: number | null;
}

export interface BtTrade {
  entry_time: number; entry_price: number; exit_time: number | null; exit_price: number | null; qty: number; pnl: number | null;
  entry_type: string | null; // market | limit (null: a run from before entry types were recorded)
  exit_reason: string | null; // signal | stop_loss | take_profit | trailing_stop | end (still open at the last candle)
  pnl_pct?: number | null; fees?: number | null; // null: a run from before they were recorded
}
export interface CurvePoint { time: number; equity: number; drawdown: number } // time in seconds, drawdown in % (>= 0)

export type QuoteMode = "candles" | "ticks";

/** A fill of a quoting run: a quote's, or a market order's when on_tick returned a position. */
export interface QuoteFill {
  time: number; // seconds
  side: "buy" | "sell";
  price: number;
  amount: number;
  fee: number;
  kind: "quote" | "market";
  pnl: number | null; // what a sale realized (average cost, fees included)
}

/** What a quoting run reports beyond return, equity and drawdown. */
export interface QuoteMetrics {
  mode: QuoteMode;
  placed: number; placedBuy: number; placedSell: number; refused: number;
  fillsBuy: number; fillsSell: number; fillRatePct: number | null; marketOrders: number;
  inventory: number | null; realizedPnl: number | null; fees: number | null;
  evaluations: number | null;
  steps: number | null; // candles or ticks run
  spreadBps: number | null; // the synthetic spread of a candle run
  minIntervalMs: number | null; // a tick run's least time between evaluations
  maxPosition: number | null;
  errorTime: number | null; // seconds: the candle or tick a strategy error stopped the run at
  notes: string[];
}

export interface BacktestView {
  id: number;
  status: string; // queued | running | done | error
  error: string | null;
  strategy_id: number | null;
  market_id: number | null;
  timeframe: string;
  params: Record<string, unknown>;
  from: number | null; // seconds
  to: number | null;
  metrics: Metrics | null;
  trades: BtTrade[];
  curve: CurvePoint[];
  mode: QuoteMode | null; // a quoting run's; null for decide
  quoting: QuoteMetrics | null;
  fills: QuoteFill[];
  /** The data the run used (seconds): its first and last candle (or tick), how many, and where its range ended
   *  (as asked, or the moment it was submitted). Null until it has run. */
  range: { first: number | null; last: number | null; candles: number | null; to: number | null } | null;
  /** It ran code sent with it (the editor's "Backtest this code"), not a saved version. */
  draft: boolean;
  /** Buying at the first candle a decision could trade and holding: [time s, equity] at the curve's times. */
  hold: { time: number; value: number }[];
  /** The strategy's own series over the run's last candles (plot = {...} in decide's tables). */
  plot: PlotSeries;
}

type Obj = Record<string, unknown>;
const obj = (x: unknown): Obj => (x && typeof x === "object" && !Array.isArray(x) ? (x as Obj) : {});
const num = (x: unknown): number | null => {
  const v = typeof x === "string" && x.trim() !== "" ? Number(x) : x;
  return typeof v === "number" && Number.isFinite(v) ? v : null;
};

/** Any time the API may send (epoch ms, epoch s, ISO 8601) in epoch seconds, or null. */
export function toSeconds(t: unknown): number | null {
  if (typeof t === "string" && !/^\d+(\.\d+)?$/.test(t.trim())) {
    const ms = Date.parse(t);
    return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
  }
  const v = num(t);
  if (v === null) return null;
  return Math.floor(v > 1e11 ? v / 1000 : v); // 1e11 s is the year 5138: anything larger is ms
}

/** The equity curve, from [[time, equity, drawdown?], ...] or [{time, equity, drawdown?}, ...];
 *  a missing drawdown is computed from the running peak. Sorted by time, one point per time. */
export function readCurve(raw: unknown): CurvePoint[] {
  if (!Array.isArray(raw)) return [];
  const byTime = new Map<number, { equity: number; drawdown: number | null }>();
  for (const p of raw) {
    const [t, e, d] = Array.isArray(p) ? p : [obj(p).time, obj(p).equity, obj(p).drawdown ?? obj(p).drawdown_pct];
    const time = toSeconds(t);
    const equity = num(e);
    if (time === null || equity === null) continue;
    const dd = num(d);
    byTime.set(time, { equity, drawdown: dd === null ? null : Math.abs(dd) });
  }
  let peak = -Infinity;
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([time, p]) => {
    peak = Math.max(peak, p.equity);
    const computed = peak > 0 ? ((peak - p.equity) / peak) * 100 : 0;
    return { time, equity: p.equity, drawdown: p.drawdown ?? computed };
  });
}

function readTrades(raw: unknown): BtTrade[] {
  if (!Array.isArray(raw)) return [];
  const out: BtTrade[] = [];
  for (const x of raw) {
    const t = obj(x);
    const entry = toSeconds(t.entry_time);
    const price = num(t.entry_price);
    if (entry === null || price === null) continue;
    const str = (x: unknown) => (typeof x === "string" && x !== "" ? x : null);
    out.push({ entry_time: entry, entry_price: price, exit_time: toSeconds(t.exit_time), exit_price: num(t.exit_price), qty: num(t.qty) ?? 0, pnl: num(t.pnl),
      entry_type: str(t.entry_type), exit_reason: str(t.exit_reason), pnl_pct: num(t.pnl_pct), fees: num(t.fees) });
  }
  return out.sort((a, b) => a.entry_time - b.entry_time);
}

function readFills(raw: unknown): QuoteFill[] {
  if (!Array.isArray(raw)) return [];
  const out: QuoteFill[] = [];
  for (const x of raw) {
    const f = obj(x);
    const time = toSeconds(f.time);
    const p = num(f.price);
    if (time === null || p === null || (f.side !== "buy" && f.side !== "sell")) continue;
    out.push({ time, side: f.side, price: p, amount: num(f.amount) ?? 0, fee: num(f.fee) ?? 0, kind: f.kind === "market" ? "market" : "quote", pnl: num(f.pnl) });
  }
  return out.sort((a, b) => a.time - b.time);
}

const asMode = (x: unknown): QuoteMode | null => (x === "candles" || x === "ticks" ? x : null);

function readQuoteMetrics(mode: QuoteMode, m: Obj): QuoteMetrics {
  const placed = obj(m.quotes_placed_by_side);
  const fills = obj(m.fills);
  return {
    mode, placed: num(m.quotes_placed) ?? 0, placedBuy: num(placed.buy) ?? 0, placedSell: num(placed.sell) ?? 0,
    refused: num(m.quotes_refused) ?? 0, fillsBuy: num(fills.buy) ?? 0, fillsSell: num(fills.sell) ?? 0,
    fillRatePct: num(m.fill_rate_pct), marketOrders: num(m.market_orders) ?? 0, inventory: num(m.final_inventory),
    realizedPnl: num(m.realized_pnl), fees: num(m.fees), evaluations: num(m.evaluations),
    steps: num(mode === "ticks" ? m.ticks : m.candles), spreadBps: num(m.spread_bps), minIntervalMs: num(m.min_interval_ms),
    maxPosition: num(m.max_position), errorTime: toSeconds(m.error_time),
    notes: Array.isArray(m.notes) ? m.notes.filter((n): n is string => typeof n === "string") : [],
  };
}

/** Read one backtest answer; unknown or missing parts become empty, never an exception. */
export function readBacktest(raw: unknown): BacktestView {
  const r = obj(raw);
  const result = obj(r.result);
  const m = { ...result, ...obj(r.metrics) };
  const config = obj(r.config);
  const mode = asMode(r.mode) ?? asMode(m.mode);
  const trades = mode ? [] : readTrades(r.trades ?? result.trades ?? m.trades);
  // the API's `fills`; a quoting report of the command line (`result`) lists them as `trades` (its `fills` counts them by side)
  const fills = mode ? readFills([r.fills, result.fills, result.trades].find(Array.isArray)) : [];
  const curve = readCurve(r.equity ?? r.equity_curve ?? r.curve ?? result.equity ?? result.equity_curve ?? result.curve);
  const hasMetrics = ["final_equity", "return_pct", "max_drawdown_pct"].some((k) => num(m[k]) !== null);
  const error = typeof r.error === "string" ? r.error : typeof result.error === "string" ? result.error : null;
  return {
    id: num(r.id) ?? 0,
    status: typeof r.status === "string" ? r.status : error ? "error" : hasMetrics ? "done" : "queued",
    error,
    strategy_id: num(r.strategy_id),
    market_id: num(r.market_id),
    timeframe: typeof r.timeframe === "string" ? r.timeframe : "1m",
    params: obj(r.params),
    from: toSeconds(r.from ?? config.from),
    to: toSeconds(r.to ?? config.to),
    metrics: hasMetrics ? {
      final_equity: num(m.final_equity), return_pct: num(m.return_pct), max_drawdown_pct: num(m.max_drawdown_pct),
      sharpe: num(m.sharpe), win_rate: num(m.win_rate), candles: num(m.candles), duration_s: num(m.duration_s),
      trades: num(m.trade_count) ?? (typeof m.trades === "number" ? m.trades : mode ? fills.length : trades.length),
      profit_factor: num(m.profit_factor), avg_trade_duration_s: num(m.avg_trade_duration_s), fees_paid: num(m.fees_paid),
      buy_and_hold_return_pct: num(m.buy_and_hold_return_pct),
    } : null,
    trades,
    curve,
    mode,
    quoting: mode && hasMetrics ? readQuoteMetrics(mode, m) : null,
    fills,
    range: r.range && typeof r.range === "object" ? {
      first: toSeconds(obj(r.range).first), last: toSeconds(obj(r.range).last), candles: num(obj(r.range).candles), to: toSeconds(obj(r.range).to),
    } : null,
    draft: r.draft === true,
    hold: readHold(r.buy_and_hold ?? result.buy_and_hold),
    plot: readPlot(r.plot ?? result.plot),
  };
}

/** Buy and hold as [[time, equity], ...]: sorted, one point per time, unreadable points left out. */
export function readHold(raw: unknown): { time: number; value: number }[] {
  if (!Array.isArray(raw)) return [];
  const by = new Map<number, number>();
  for (const p of raw) {
    if (!Array.isArray(p)) continue;
    const time = toSeconds(p[0]);
    const value = num(p[1]);
    if (time !== null && value !== null) by.set(time, value);
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
}

/** A duration in seconds, as people say it: 45 s, 12 min, 3 h 20 min, 2 d 4 h. */
export function duration(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s) || s < 0) return "—";
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

/** How a quoting run met the market, for the page: on stored ticks, or on candles with a made-up book. */
export function modeLabel(q: Pick<QuoteMetrics, "mode" | "spreadBps" | "minIntervalMs">): string {
  if (q.mode === "ticks") return `stored ticks${q.minIntervalMs !== null ? `, on_tick at most every ${q.minIntervalMs.toLocaleString("en-US")} ms` : ""}`;
  return `candles with a synthetic spread${q.spreadBps !== null ? ` of ${q.spreadBps.toLocaleString("en-US")} bps` : ""} (an approximation: a quote fills when a candle's range crosses it)`;
}

/** Fills as chart markers: buys below the bar, sells above, a market order's named so (the most recent `max`). */
export function fillMarkers(fills: QuoteFill[], max = 1000): Marker[] {
  return fills.slice(-max).map((f) => {
    const buy = f.side === "buy";
    return { time: f.time, position: buy ? "belowBar" : "aboveBar", color: buy ? "#2f9e6e" : "#c2553a", shape: buy ? "arrowUp" : "arrowDown",
      text: f.kind === "market" ? `market ${f.side}` : f.side } satisfies Marker;
  });
}

/** Whether the Lua source defines the global function `name` (`function name(` or `name = function`), comments aside. */
export function definesFunction(code: string, name: string): boolean {
  const src = code.replace(/--\[(=*)\[[\s\S]*?\]\1\]|--[^\n]*/g, "");
  return new RegExp(`(^|[^.:\\w])function\\s+${name}\\s*\\(|(^|[^.:\\w])${name}\\s*=\\s*function\\b`).test(src);
}

/** Whether a backtest of this code runs on_tick when no trigger is given: it defines on_tick and no decide.
 *  The server's rule, read from the source: the server decides, this only chooses which fields the form shows. */
export function quotesByDefault(code: string): boolean {
  return definesFunction(code, "on_tick") && !definesFunction(code, "decide");
}

/** Still worth polling? */
export function isRunning(b: BacktestView): boolean {
  return b.status === "queued" || b.status === "running";
}

const EXIT_WORD: Record<string, string> = { stop_loss: "stop", take_profit: "target", trailing_stop: "trail" };

/** Entries and exits as chart markers (an entry is a buy, an exit a sell, named by its reason when it was
 *  a protective exit; a trade still open at the last candle gets no exit marker). */
export function tradeMarkers(trades: BtTrade[]): Marker[] {
  const out: Marker[] = [];
  for (const t of trades) {
    out.push({ time: t.entry_time, position: "belowBar", color: "#2f9e6e", shape: "arrowUp", text: t.entry_type === "limit" ? "buy limit" : "buy" });
    if (t.exit_time !== null && t.exit_reason !== "end") {
      const won = (t.pnl ?? 0) >= 0;
      const word = EXIT_WORD[t.exit_reason ?? ""] ?? "sell";
      out.push({ time: t.exit_time, position: "aboveBar", color: won ? "#2f9e6e" : "#c2553a", shape: "arrowDown", text: t.pnl === null ? word : `${word} ${won ? "+" : ""}${t.pnl.toFixed(2)}` });
    }
  }
  return out.sort((a, b) => a.time - b.time);
}

/** Why a trade ended: its exit reason; "open" for one without an exit, "unknown" for an exit from a run
 *  made before exit reasons were recorded. */
export function exitKey(t: BtTrade): string {
  return t.exit_reason ?? (t.exit_time === null ? "open" : "unknown");
}

export interface ExitGroup { reason: string; count: number; pnl: number; wins: number }

/** Trades grouped by exit reason: how many, their summed P&L and how many won, in a fixed order
 *  (signal, stop-loss, take-profit, trailing stop, open at the end, …). Empty when the run recorded no reasons. */
export function exitsByReason(trades: BtTrade[]): ExitGroup[] {
  if (!trades.some((t) => t.exit_reason)) return [];
  const by = new Map<string, ExitGroup>();
  for (const t of trades) {
    const reason = exitKey(t);
    const g = by.get(reason) ?? { reason, count: 0, pnl: 0, wins: 0 };
    g.count += 1;
    g.pnl += t.pnl ?? 0;
    if ((t.pnl ?? 0) > 0) g.wins += 1;
    by.set(reason, g);
  }
  const rank = (r: string) => (EXIT_ORDER.includes(r) ? EXIT_ORDER.indexOf(r) : EXIT_ORDER.length);
  return [...by.values()].sort((a, b) => rank(a.reason) - rank(b.reason) || a.reason.localeCompare(b.reason));
}
