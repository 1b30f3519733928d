import { describe, expect, it } from "vitest";
import type { Order } from "./api/client";
import { exitReasonLabel, exitReasonOf, isOpenOrder, openOrders, orderLevels, orderTypeLabel } from "./orders";

const order = (o: Partial<Order>): Order => ({ id: 1, assignment_id: 1, trader_id: 1, client_order_id: "x", exchange: "sim", symbol: "BTC/USD", side: "buy", amount: "1",
  price: null, filled: "0", fee: "0", pnl: null, status: "open", reason: null, type: "market", limit_price: null, stop_price: null, exit_reason: null,
  candle_time: null, latency_ms: null, created_at: "", ...o });

describe("order labels", () => {
  it("names order types and exit reasons for people", () => {
    expect(["market", "limit", "stop", "take_profit", "trailing_stop", "quote"].map(orderTypeLabel)).toEqual(["market", "limit", "stop", "take-profit", "trailing stop", "quote"]);
    expect(orderTypeLabel(undefined)).toBe("market");
    expect(orderTypeLabel("iceberg")).toBe("iceberg");
    expect(["signal", "stop_loss", "take_profit", "trailing_stop", "end"].map(exitReasonLabel)).toEqual(["signal", "stop-loss", "take-profit", "trailing stop", "open at end"]);
    expect(exitReasonLabel(null)).toBe("—");
    expect(exitReasonLabel("margin_call")).toBe("margin call");
  });

  it("gives the exit reason of filled sells only", () => {
    expect(exitReasonOf(order({ side: "sell", status: "filled", exit_reason: "stop_loss" }))).toBe("stop_loss");
    expect(exitReasonOf(order({ side: "sell", status: "open", exit_reason: "stop_loss" }))).toBeNull();
    expect(exitReasonOf(order({ side: "buy", status: "filled", exit_reason: "signal" }))).toBeNull();
    expect(exitReasonOf(order({ side: "sell", status: "filled" }))).toBeNull();
  });
});

describe("open orders", () => {
  it("are resting protective exits and limit entries, not market orders or finished ones", () => {
    expect(isOpenOrder(order({ type: "stop", status: "open" }))).toBe(true);
    expect(isOpenOrder(order({ type: "limit", status: "pending" }))).toBe(true);
    expect(isOpenOrder(order({ type: "market", status: "open" }))).toBe(false);
    expect(isOpenOrder(order({ type: "take_profit", status: "filled" }))).toBe(false);
    expect(isOpenOrder(order({ type: "trailing_stop", status: "canceled" }))).toBe(false);
    expect(isOpenOrder(order({ type: "quote", status: "open" }))).toBe(true);
    expect(isOpenOrder(order({ type: "quote", status: "canceled" }))).toBe(false);
  });

  it("list protective exits first, then limit entries, each by assignment, newest first", () => {
    const list = openOrders([
      order({ id: 1, type: "limit", assignment_id: 1 }),
      order({ id: 2, type: "stop", assignment_id: 2 }),
      order({ id: 3, type: "market", status: "filled" }),
      order({ id: 4, type: "take_profit", assignment_id: 1 }),
      order({ id: 5, type: "limit", assignment_id: 3 }),
      order({ id: 6, type: "stop", assignment_id: 1 }),
      order({ id: 7, type: "quote", assignment_id: 1 }),
    ]);
    expect(list.map((o) => o.id)).toEqual([6, 4, 2, 1, 5, 7]);
  });

  it("show the prices they rest at", () => {
    expect(orderLevels(order({ type: "limit", limit_price: "99.5" }))).toEqual([{ label: "limit", price: 99.5 }]);
    expect(orderLevels(order({ type: "stop", stop_price: "95" }))).toEqual([{ label: "stop", price: 95 }]);
    expect(orderLevels(order({ type: "take_profit", limit_price: "103", stop_price: "95" }))).toEqual([{ label: "target", price: 103 }, { label: "stop", price: 95 }]);
    expect(orderLevels(order({ type: "trailing_stop", stop_price: "97.25" }))).toEqual([{ label: "trail", price: 97.25 }]);
    expect(orderLevels(order({ type: "market" }))).toEqual([]);
    expect(orderLevels(order({ type: "stop", stop_price: "" }))).toEqual([]);
    expect(orderLevels(order({ type: "quote", side: "buy", limit_price: "60010" }))).toEqual([{ label: "bid", price: 60010 }]);
    expect(orderLevels(order({ type: "quote", side: "sell", price: "60020" }))).toEqual([{ label: "ask", price: 60020 }]);
  });
});
