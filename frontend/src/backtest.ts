// A backtest run as the page shows it, read from GET /api/backtests/{id}.
// The reader accepts the engine's report as it is nested in the API answer (`result`: the
// `tradewind backtest --json` document plus the equity curve) or flattened (`metrics`, `trades`,
// `equity`), and times as epoch ms, epoch seconds or ISO 8601, so the page does not break on either.
import type { Marker } from "./chartdata";
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
}

export interface BtTrade {
  entry_time: number; entry_price: number; exit_time: number | null; exit_price: number | null; qty: number; pnl: number | null;
  entry_type: string | null; // market | limit (null: a run from before entry types were recorded)
  exit_reason: string | null; // signal | stop_loss | take_profit | trailing_stop | end (still open at the last candle)
}
export interface CurvePoint { time: number; equity: number; drawdown: number } // time in seconds, drawdown in % (>= 0)

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
      entry_type: str(t.entry_type), exit_reason: str(t.exit_reason) });
  }
  return out.sort((a, b) => a.entry_time - b.entry_time);
}

/** Read one backtest answer; unknown or missing parts become empty, never an exception. */
export function readBacktest(raw: unknown): BacktestView {
  const r = obj(raw);
  const result = obj(r.result);
  const m = { ...result, ...obj(r.metrics) };
  const config = obj(r.config);
  const trades = readTrades(r.trades ?? result.trades ?? m.trades);
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
      trades: num(m.trade_count) ?? (typeof m.trades === "number" ? m.trades : trades.length),
    } : null,
    trades,
    curve,
  };
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
