import { describe, expect, it } from "vitest";
import { initialLive, reduceLive } from "./stream";

describe("live state", () => {
  it("keeps the last 1m close per market and ignores other timeframes", () => {
    let s = reduceLive(initialLive, { type: "candle", exchange: "sim", symbol: "BTC/USD", tf: "1m", time: 1, open: 1, high: 1, low: 1, close: 42, volume: 1 });
    s = reduceLive(s, { type: "candle", exchange: "sim", symbol: "BTC/USD", tf: "1h", time: 1, open: 1, high: 1, low: 1, close: 7, volume: 1 });
    expect(s.prices["sim:BTC/USD"]).toBe(42);
  });

  it("records each assignment's last decision and a bounded list of orders", () => {
    let s = reduceLive(initialLive, { type: "evaluation", assignment_id: 3, candle_time: 60_000, status: "ok", position: "long", error: null, symbol: "BTC/USD", tf: "1m" });
    expect(s.lastDecision[3].position).toBe("long");
    for (let i = 0; i < 60; i++) {
      s = reduceLive(s, { type: "fill", id: i, assignment_id: 3, client_order_id: `c${i}`, side: "buy", status: "filled", price: "1", filled: "1", symbol: "BTC/USD" });
    }
    expect(s.recent).toHaveLength(50);
    expect((s.recent[0] as { id: number }).id).toBe(59);
  });
});
