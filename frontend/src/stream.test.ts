import { describe, expect, it } from "vitest";
import { initialLive, reduceLive, type OrderEvent } from "./stream";

const candle = (close: number, tf = "1m") => ({ type: "candle" as const, market_id: 1, exchange: "sim", symbol: "BTC/USD", tf, time: 60_000, open: 1, high: 1, low: 1, close, volume: 1 });
const order = (i: number, status = "filled", cid = `c${i}`): OrderEvent => ({ type: status === "filled" ? "fill" : "order", id: i, assignment_id: 3, client_order_id: cid, side: "buy", status, price: "1", filled: "1", symbol: "BTC/USD" });

describe("live state", () => {
  it("keeps the last close per market and the direction it moved", () => {
    let s = reduceLive(initialLive, candle(42));
    expect(s.prices["sim:BTC/USD"]).toBe(42);
    expect(s.moves["sim:BTC/USD"]).toBeUndefined();
    s = reduceLive(s, candle(41, "5m"));
    expect(s.prices["sim:BTC/USD"]).toBe(41);
    expect(s.moves["sim:BTC/USD"]).toBe("down");
    expect(reduceLive(s, candle(41))).toBe(s);
  });

  it("records each assignment's last decision and ignores a late older one", () => {
    let s = reduceLive(initialLive, { type: "evaluation", assignment_id: 3, candle_time: 120_000, status: "ok", position: "long", error: null, symbol: "BTC/USD", tf: "1m" });
    s = reduceLive(s, { type: "evaluation", assignment_id: 3, candle_time: 60_000, status: "ok", position: "short", error: null, symbol: "BTC/USD", tf: "1m" });
    expect(s.lastDecision[3].position).toBe("long");
    expect(s.activity).toBe(2);
  });

  it("keeps a bounded list of orders, one row per order, and counts activity past the bound", () => {
    let s = initialLive;
    for (let i = 0; i < 60; i++) s = reduceLive(s, order(i));
    expect(s.recent).toHaveLength(50);
    expect(s.recent[0].id).toBe(59);
    expect(s.activity).toBe(60);
    s = reduceLive(s, order(100, "open", "same"));
    s = reduceLive(s, order(100, "filled", "same"));
    expect(s.recent.filter((o) => o.client_order_id === "same")).toHaveLength(1);
    expect(s.recent[0].status).toBe("filled");
  });

  it("ignores events it does not know", () => {
    expect(reduceLive(initialLive, { type: "subscribed", markets: null })).toBe(initialLive);
  });
});
