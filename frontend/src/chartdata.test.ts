import { describe, expect, it } from "vitest";
import type { Assignment, Order } from "./api/client";
import { COLORS, mergeBar, protectionLines, snapMarkers, toBars, toMarkers, type Marker } from "./chartdata";

const ev = (t: number, position: "long" | "short" | "neutral" | null, status = "ok") => ({
  id: t, assignment_id: 1, candle_time: t, status, position, size: 1, note: null, error: status === "ok" ? null : "boom",
  logs: [], duration_ms: 0.1, latency_ms: 1, created_at: "",
});
const order = (o: Partial<Order>): Order => ({ id: 1, assignment_id: 1, trader_id: 1, client_order_id: "x", exchange: "sim", symbol: "BTC/USD", side: "buy", amount: "1",
  price: "100", filled: "1", fee: "0", pnl: null, status: "filled", reason: null, type: "market", candle_time: 60_000, latency_ms: 1, created_at: "", ...o }) as Order;

describe("chart data", () => {
  it("converts candles to seconds, sorted and de-duplicated", () => {
    const bars = toBars([
      { time: 120_000, open: 2, high: 3, low: 1, close: 2, volume: 1 },
      { time: 60_000, open: 1, high: 2, low: 1, close: 1, volume: 1 },
      { time: 120_000, open: 2, high: 4, low: 1, close: 3, volume: 1 },
    ]);
    expect(bars.map((b) => b.time)).toEqual([60, 120]);
    expect(bars[1].close).toBe(3);
  });

  it("replaces the last bar with a live update and ignores old ones", () => {
    const bars = [{ time: 60, open: 1, high: 1, low: 1, close: 1 }];
    expect(mergeBar(bars, { time: 60, open: 1, high: 2, low: 1, close: 2 })[0].close).toBe(2);
    expect(mergeBar(bars, { time: 120, open: 1, high: 2, low: 1, close: 2 })).toHaveLength(2);
    expect(mergeBar(bars, { time: 0, open: 1, high: 2, low: 1, close: 2 })).toBe(bars);
    expect(mergeBar([], { time: 0, open: 1, high: 2, low: 1, close: 2 })).toHaveLength(1);
  });

  it("marks only changes of position, errors, and fills at their price on the next candle", () => {
    const markers = toMarkers(
      [ev(60_000, "long"), ev(120_000, "long"), ev(180_000, "short"), ev(240_000, null, "error"), ev(300_000, "neutral"), ev(360_000, "long")],
      [order({}), order({ id: 2, status: "rejected", candle_time: 180_000 })],
    );
    expect(markers.map((m) => [m.time, m.text])).toEqual([[60, "long"], [120, "buy"], [180, "short"], [240, "error"], [360, "long"]]);
    expect(markers[1]).toMatchObject({ position: "atPriceMiddle", price: 100 });
    expect(markers[0].shape).toBe("arrowUp");
    expect(markers[2]).toMatchObject({ shape: "arrowDown", position: "aboveBar" });
  });

  it("puts markers on the bar that contains them and leaves out those off the chart", () => {
    const bars = [0, 300, 600].map((time) => ({ time, open: 1, high: 1, low: 1, close: 1 }));
    const m = (time: number): Marker => ({ time, position: "aboveBar", color: "", shape: "circle", text: String(time) });
    const snapped = snapMarkers([m(660), m(-60), m(60), m(300), m(899), m(900)], bars, 300);
    expect(snapped.map((x) => [x.text, x.time])).toEqual([["60", 0], ["300", 300], ["660", 600], ["899", 600]]);
    expect(snapMarkers([m(1)], [], 60)).toEqual([]);
  });

  it("names a protective exit's fill after its reason", () => {
    const markers = toMarkers([], [
      order({ id: 1, side: "sell", exit_reason: "stop_loss", candle_time: 60_000 }),
      order({ id: 2, side: "sell", exit_reason: "take_profit", candle_time: 120_000 }),
      order({ id: 3, side: "sell", exit_reason: "trailing_stop", candle_time: 180_000 }),
      order({ id: 4, side: "sell", exit_reason: "signal", candle_time: 240_000 }),
    ]);
    expect(markers.map((m) => m.text)).toEqual(["sell (stop)", "sell (target)", "sell (trail)", "sell"]);
  });
});

const assignment = (a: Partial<Assignment>): Assignment => ({ id: 1, strategy_id: 1, market_id: 7, timeframe: "1m", trader_id: 1, allocation: "1000", params: {},
  lookback: 500, enabled: true, paused_reason: null, position_qty: "0.5", entry_cost: "50", realized_pnl: "0", last_position: "long", created_at: "",
  protection: { stop_loss: "0.002", take_profit: "0.003", trailing_stop: null, entry: "100", stop: "99.8", target: "100.3", watched: false }, ...a });

describe("protection lines", () => {
  it("draw the stop (red) and target (green) of each protected open position on the market", () => {
    const lines = protectionLines([
      assignment({ id: 12 }),
      assignment({ id: 3, protection: { stop_loss: null, take_profit: null, trailing_stop: "0.01", entry: "100", stop: "101.5", target: null, watched: true } }),
    ], 7);
    expect(lines.map((l) => [l.title, l.price, l.color])).toEqual([
      ["stop #3", 101.5, COLORS.down], ["stop #12", 99.8, COLORS.down], ["target #12", 100.3, COLORS.up],
    ]);
    expect(lines[0]).toMatchObject({ kind: "stop", assignment_id: 3, watched: true, key: "stop-3" });
  });

  it("leave out other markets, flat positions, and positions without protection or prices", () => {
    expect(protectionLines([
      assignment({ id: 1, market_id: 8 }),
      assignment({ id: 2, position_qty: "0" }),
      assignment({ id: 3, protection: null }),
      assignment({ id: 4, protection: undefined }),
      assignment({ id: 5, protection: { stop_loss: "0.01", take_profit: null, trailing_stop: null, entry: null, stop: null, target: null, watched: false } }),
      assignment({ id: 6, protection: { stop_loss: "0.01", take_profit: null, trailing_stop: null, entry: "1", stop: "0", target: "abc", watched: false } }),
    ], 7)).toEqual([]);
  });
});
