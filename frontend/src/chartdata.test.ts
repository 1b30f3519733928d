import { describe, expect, it } from "vitest";
import type { Order } from "./api/client";
import { mergeBar, snapMarkers, toBars, toMarkers, type Marker } from "./chartdata";

const ev = (t: number, position: string | null, status = "ok") => ({
  id: t, assignment_id: 1, candle_time: t, status, position, size: 1, note: null, error: status === "ok" ? null : "boom",
  logs: [], duration_ms: 0.1, latency_ms: 1, created_at: "",
});
const order = (o: Partial<Order>): Order => ({ id: 1, assignment_id: 1, trader_id: 1, client_order_id: "x", exchange: "sim", symbol: "BTC/USD", side: "buy", amount: "1",
  price: "100", filled: "1", fee: "0", pnl: null, status: "filled", reason: null, candle_time: 60_000, latency_ms: 1, created_at: "", ...o }) as Order;

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
});
