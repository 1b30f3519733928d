import { describe, expect, it } from "vitest";
import { definesFunction, exitsByReason, fillMarkers, isRunning, modeLabel, quotesByDefault, readBacktest, readCurve, toSeconds, tradeMarkers, type BtTrade } from "./backtest";

describe("backtest times", () => {
  it("reads epoch ms, epoch s and ISO 8601 as seconds", () => {
    expect(toSeconds(1_700_000_000_000)).toBe(1_700_000_000);
    expect(toSeconds(1_700_000_000)).toBe(1_700_000_000);
    expect(toSeconds("2024-01-01T00:00:00Z")).toBe(1_704_067_200);
    expect(toSeconds("1700000000000")).toBe(1_700_000_000);
    expect(toSeconds("not a date")).toBeNull();
    expect(toSeconds(null)).toBeNull();
  });
});

describe("equity curve", () => {
  const T = 1_700_000_000_000;
  it("reads [time, equity, drawdown] rows as sent by the engine", () => {
    expect(readCurve([[T + 120_000, 9_000, 10], [T + 60_000, 10_000, 0]])).toEqual([
      { time: T / 1000 + 60, equity: 10_000, drawdown: 0 },
      { time: T / 1000 + 120, equity: 9_000, drawdown: 10 },
    ]);
  });

  it("computes the drawdown from the running peak when it is missing", () => {
    const c = readCurve([{ time: 60_000, equity: 100 }, { time: 120_000, equity: 120 }, { time: 180_000, equity: 90 }, { time: 240_000, equity: 130 }]);
    expect(c.map((p) => p.drawdown)).toEqual([0, 0, 25, 0]);
  });

  it("drops points without a time or an equity and keeps one per time", () => {
    expect(readCurve([[T, "x"], [null, 5], [T, 1], [T, 2]])).toEqual([{ time: T / 1000, equity: 2, drawdown: 0 }]);
    expect(readCurve("nope")).toEqual([]);
  });
});

describe("backtest answer", () => {
  const report = {
    trades: [
      { entry_time: "2018-01-10T09:10:00Z", entry_price: 0.0963, exit_time: "2018-01-10T09:55:00Z", exit_price: 0.0914, qty: 100, pnl: -531.12 },
      { entry_time: "2018-01-10T11:00:00Z", entry_price: 0.09, exit_time: null, exit_price: null, qty: 1, pnl: null },
    ],
    final_equity: 9249.73, return_pct: -7.5, max_drawdown_pct: 29.69, sharpe: -0.46, win_rate: 32.5, candles: 5760, duration_s: 0.41, error: null,
  };

  it("reads the engine's report nested under result, with the curve", () => {
    const b = readBacktest({ id: 4, status: "done", strategy_id: 1, market_id: 2, timeframe: "5m", config: { from: "2018-01-10T00:00:00Z", cash: 10000 },
      result: { ...report, equity: [[1_515_575_400_000, 10_000, 0]] } });
    expect(b.status).toBe("done");
    expect(b.metrics).toMatchObject({ return_pct: -7.5, max_drawdown_pct: 29.69, trades: 2, win_rate: 32.5 });
    expect(b.trades[0].entry_time).toBe(1_515_575_400);
    expect(b.trades[1].exit_time).toBeNull();
    expect(b.curve).toHaveLength(1);
    expect(b.from).toBe(1_515_542_400);
    expect(b.timeframe).toBe("5m");
  });

  it("reads flattened metrics, trades and equity_curve too", () => {
    const { trades, ...metrics } = report;
    const b = readBacktest({ id: 5, status: "done", metrics: { ...metrics, trades: 7 }, trades, equity_curve: [{ time: 1, equity: 2 }] });
    expect(b.metrics?.trades).toBe(7);
    expect(b.trades).toHaveLength(2);
    expect(b.curve).toEqual([{ time: 1, equity: 2, drawdown: 0 }]);
  });

  it("reads the API's answer: metrics, trades and equity side by side, times in config as epoch ms", () => {
    const { trades, ...metrics } = report;
    const b = readBacktest({ id: 9, status: "done", strategy_id: 1, version: 2, market_id: 1, timeframe: "1h", params: { fast: 5 },
      config: { cash: 10000, fee: 0.001, from: 1_795_392_000_000, to: null }, metrics, trades, equity: [[1_795_392_000_000, 10000, 0]], error: null });
    expect(b.from).toBe(1_795_392_000);
    expect(b.to).toBeNull();
    expect(b.metrics?.trades).toBe(2);
    expect(b.curve[0].time).toBe(1_795_392_000);
    expect(readBacktest({ id: 9, status: "done", metrics: { ...metrics, trade_count: 12 }, trades: null, equity: null }).metrics?.trades).toBe(12);
  });

  it("is still running while queued or running, and shows the error of a failed run", () => {
    expect(isRunning(readBacktest({ id: 1, status: "queued" }))).toBe(true);
    expect(isRunning(readBacktest({ id: 1, status: "running" }))).toBe(true);
    const failed = readBacktest({ id: 1, status: "error", error: "strategy 'x': attempt to index a nil value (line 3)" });
    expect(isRunning(failed)).toBe(false);
    expect(failed.error).toMatch(/line 3/);
    expect(failed.metrics).toBeNull();
    expect(readBacktest(null)).toMatchObject({ id: 0, trades: [], curve: [], metrics: null });
  });

  it("marks entries below the bar and exits above it, with the trade's P&L", () => {
    const m = tradeMarkers(readBacktest({ result: report }).trades);
    expect(m.map((x) => [x.shape, x.text])).toEqual([["arrowUp", "buy"], ["arrowDown", "sell -531.12"], ["arrowUp", "buy"]]);
    expect(m[1].color).toBe("#c2553a");
  });
});

describe("exits", () => {
  const trade = (t: Partial<BtTrade>): BtTrade => ({ entry_time: 60, entry_price: 100, exit_time: 120, exit_price: 101, qty: 1, pnl: 1, entry_type: "market", exit_reason: "signal", ...t });

  it("reads each trade's entry type and exit reason, null for runs that did not record them", () => {
    const b = readBacktest({ trades: [
      { entry_time: 60_000, entry_price: 100, entry_type: "limit", exit_time: 120_000, exit_price: 99.8, exit_reason: "stop_loss", qty: 1, pnl: -0.2 },
      { entry_time: 180_000, entry_price: 100, exit_time: 240_000, exit_price: 101, qty: 1, pnl: 1 },
    ] });
    expect(b.trades.map((t) => [t.entry_type, t.exit_reason])).toEqual([["limit", "stop_loss"], [null, null]]);
  });

  it("are summed by reason, in a fixed order, with the trades still open at the end apart", () => {
    const g = exitsByReason([
      trade({ exit_reason: "take_profit", pnl: 3 }), trade({ exit_reason: "stop_loss", pnl: -2 }), trade({ exit_reason: "signal", pnl: 0.5 }),
      trade({ exit_reason: "stop_loss", pnl: -1.5 }), trade({ exit_reason: "end", pnl: 0.25 }), trade({ exit_reason: "trailing_stop", pnl: 1 }),
      trade({ exit_reason: "signal", pnl: -0.5 }),
    ]);
    expect(g).toEqual([
      { reason: "signal", count: 2, pnl: 0, wins: 1 },
      { reason: "stop_loss", count: 2, pnl: -3.5, wins: 0 },
      { reason: "take_profit", count: 1, pnl: 3, wins: 1 },
      { reason: "trailing_stop", count: 1, pnl: 1, wins: 1 },
      { reason: "end", count: 1, pnl: 0.25, wins: 1 },
    ]);
  });

  it("are not summarised for a run that recorded no reasons", () => {
    expect(exitsByReason([trade({ exit_reason: null }), trade({ exit_reason: null, exit_time: null, pnl: null })])).toEqual([]);
    expect(exitsByReason([trade({ exit_reason: "signal" }), trade({ exit_reason: null, exit_time: null, pnl: null })]).map((x) => x.reason)).toEqual(["signal", "open"]);
  });

  it("name protective exits and limit entries on the chart, and draw no exit for a trade still open", () => {
    const m = tradeMarkers([
      trade({ entry_type: "limit", exit_reason: "stop_loss", pnl: -2 }),
      trade({ entry_time: 180, exit_time: 240, exit_reason: "take_profit", pnl: 3 }),
      trade({ entry_time: 300, exit_time: 360, exit_reason: "end", pnl: 0.5 }),
    ]);
    expect(m.map((x) => x.text)).toEqual(["buy limit", "stop -2.00", "buy", "target +3.00", "buy"]);
  });
});

describe("quoting runs", () => {
  // GET /api/backtests/{id} of a quoting run, as the worker stores it (numbers shortened)
  const metrics = {
    mode: "candles", label: "candles (approximation: a quote fills when a candle's range crosses it)", quotes_placed: 316,
    quotes_placed_by_side: { buy: 225, sell: 91 }, quotes_refused: 2, fills: { buy: 91, sell: 90 }, fill_rate_pct: 57.28,
    market_orders: 1, final_inventory: 1, realized_pnl: -3.14, fees: 18.2, final_equity: 9996.86, return_pct: -0.0314,
    max_drawdown_pct: 0.0314, evaluations: 299, candles: 300, duration_s: 0.04, notes: ["a note"], error: null, error_time: null,
    spread_bps: 5, max_position: null,
  };
  const fills = [
    { time: "2024-01-01T00:02:00Z", side: "sell", price: 100.2, amount: 1, fee: 0.1, kind: "quote", pnl: 0.3 },
    { time: "2024-01-01T00:01:00Z", side: "buy", price: 99.8, amount: 1, fee: 0.1, kind: "quote", pnl: null },
    { time: "2024-01-01T00:03:00Z", side: "buy", price: 100, amount: 0.5, fee: 0.05, kind: "market", pnl: null },
  ];

  it("reads the mode, the fills (oldest first) and the quote metrics of the API's answer", () => {
    const b = readBacktest({ id: 3, status: "done", timeframe: "1m", mode: "candles", metrics, trades: null, fills, equity: [[1_704_067_200_000, 10_000, 0]] });
    expect(b.mode).toBe("candles");
    expect(b.trades).toEqual([]);
    expect(b.fills.map((f) => [f.time, f.side, f.kind])).toEqual([[1_704_067_260, "buy", "quote"], [1_704_067_320, "sell", "quote"], [1_704_067_380, "buy", "market"]]);
    expect(b.fills[1].pnl).toBe(0.3);
    expect(b.metrics).toMatchObject({ return_pct: -0.0314, final_equity: 9996.86, trades: 3 });
    expect(b.quoting).toMatchObject({ mode: "candles", placed: 316, placedBuy: 225, placedSell: 91, refused: 2, fillsBuy: 91, fillsSell: 90,
      fillRatePct: 57.28, marketOrders: 1, inventory: 1, realizedPnl: -3.14, fees: 18.2, evaluations: 299, steps: 300, spreadBps: 5,
      minIntervalMs: null, maxPosition: null, errorTime: null, notes: ["a note"] });
  });

  it("reads a tick run's steps, interval and the time a strategy error stopped it", () => {
    const { candles: _, ...rest } = metrics;
    const b = readBacktest({ id: 4, status: "error", error: "strategy 'mm' (candle 2024-01-01 00:14 UTC): lost the book", mode: "ticks",
      metrics: { ...rest, mode: "ticks", label: "ticks", ticks: 3600, min_interval_ms: 5000, spread_bps: undefined, error_time: "2024-01-01T00:15:03Z" }, fills: [] });
    expect(b.quoting).toMatchObject({ mode: "ticks", steps: 3600, minIntervalMs: 5000, spreadBps: null, errorTime: 1_704_068_103 });
    expect(b.error).toMatch(/lost the book/);
    expect(modeLabel(b.quoting!)).toBe("stored ticks, on_tick at most every 5,000 ms");
  });

  it("reads the command line's quoting report nested under result, its fills listed as trades", () => {
    const b = readBacktest({ id: 5, status: "done", result: { ...metrics, trades: fills, equity: [] } });
    expect(b.mode).toBe("candles");
    expect(b.fills).toHaveLength(3);
    expect(b.trades).toEqual([]);
  });

  it("says a candle run's spread and that it is an approximation", () => {
    expect(modeLabel({ mode: "candles", spreadBps: 2, minIntervalMs: null })).toBe("candles with a synthetic spread of 2 bps (an approximation: a quote fills when a candle's range crosses it)");
  });

  it("leaves a decide run without a mode, fills or quote metrics", () => {
    const b = readBacktest({ id: 6, status: "done", mode: null, metrics: { final_equity: 1, return_pct: 0, max_drawdown_pct: 0 }, trades: [] });
    expect(b.mode).toBeNull();
    expect(b.quoting).toBeNull();
    expect(b.fills).toEqual([]);
  });

  it("draws buys below the bar and sells above, naming a market order's", () => {
    const m = fillMarkers(readBacktest({ mode: "candles", metrics, fills }).fills);
    expect(m.map((x) => [x.position, x.shape, x.text])).toEqual([["belowBar", "arrowUp", "buy"], ["aboveBar", "arrowDown", "sell"], ["belowBar", "arrowUp", "market buy"]]);
    expect(fillMarkers(readBacktest({ mode: "candles", metrics, fills }).fills, 1).map((x) => x.text)).toEqual(["market buy"]);
  });

  it("tells a strategy that quotes by default (on_tick and no decide) from its source", () => {
    const mm = "-- a market maker\nfunction on_tick(t, c, params)\n  return {quotes = {}}\nend\n";
    expect(quotesByDefault(mm)).toBe(true);
    expect(quotesByDefault("on_tick = function(t) end")).toBe(true);
    expect(quotesByDefault(mm + 'function decide(c) return "long" end')).toBe(false);
    expect(definesFunction(mm + 'function decide(c) return "long" end', "on_tick")).toBe(true);
    expect(quotesByDefault('function decide(c) return "long" end')).toBe(false);
    expect(quotesByDefault("-- function on_tick(t) end\nfunction decide(c) end")).toBe(false);
    expect(quotesByDefault("--[[ function decide(c) end ]]\nfunction on_tick(t) end")).toBe(true);
    expect(definesFunction("function my_on_tick(t) end", "on_tick")).toBe(false);
    expect(definesFunction("function M.on_tick(t) end", "on_tick")).toBe(false);
  });
});

describe("the range a run used", () => {
  it("reads the data's first and last candle and where the range ended", () => {
    const v = readBacktest({ id: 3, status: "done", config: { to: 1_700_000_060_000 },
      range: { from: null, to: 1_700_000_060_000, first: 1_699_990_000_000, last: 1_700_000_000_000, candles: 168 } });
    expect(v.range).toEqual({ first: 1_699_990_000, last: 1_700_000_000, candles: 168, to: 1_700_000_060 });
    expect(readBacktest({ id: 4, status: "queued" }).range).toBeNull();
  });
});
