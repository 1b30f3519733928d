import { afterEach, describe, expect, it, vi } from "vitest";
import type { Quotes } from "./api/client";
import { batcher, bookOf, compact, formatBps, formatRate, isTickAssignment, QUOTE_COLORS, quoteLabel, quoteLines, quoteStats, spreadText, triggerLabel } from "./quotes";

const book = (o: Partial<Quotes> = {}): Quotes => ({
  assignment_id: 7, trigger: "tick", inventory: "0", max_position: null, quotes: [], realized_pnl: "0",
  placed: 0, filled: 0, buys_filled: 0, sells_filled: 0, fill_rate: null, ...o,
});
const q = (side: "buy" | "sell", price: string, amount = "0.01", id = `${side}-${price}`) => ({ client_order_id: id, side, price, amount, status: "open" as const });

describe("the top of the book", () => {
  it("gives the mid and the spread in price and basis points", () => {
    const b = bookOf({ bid: 60_000, ask: 60_012 });
    expect(b.mid).toBe(60_006);
    expect(b.spread).toBe(12);
    expect(b.bps).toBeCloseTo(1.99980002, 6);
    expect(spreadText(b)).toBe("12 · 2.0 bps");
  });

  it("says so when a side is empty or the book is crossed", () => {
    expect(bookOf({ bid: 0, ask: 101 })).toEqual({ bid: null, ask: 101, mid: null, spread: null, bps: null });
    expect(spreadText(bookOf({ bid: 0, ask: 101 }))).toBe("one side empty");
    expect(spreadText(bookOf({ bid: 0, ask: 0 }))).toBe("book empty");
    expect(spreadText(bookOf({ bid: 101, ask: 100 }))).toMatch(/^crossed by 1 · -99\.5 bps$/);
  });

  it("formats basis points with the precision their size deserves", () => {
    expect(formatBps(0.1666)).toBe("0.17 bps");
    expect(formatBps(3.333)).toBe("3.3 bps");
    expect(formatBps(125.4)).toBe("125 bps");
    expect(formatBps(1234)).toBe("1,234 bps");
    expect(formatBps(0)).toBe("0 bps");
    expect(formatBps(null)).toBe("—");
    expect(formatBps(NaN)).toBe("—");
  });

  it("writes numbers compactly, without trailing zeros", () => {
    expect(compact(60010)).toBe("60,010");
    expect(compact("60010.50")).toBe("60,010.5");
    expect(compact("0.01000000")).toBe("0.01");
    expect(compact(0.000012345)).toBe("0.00001235");
    expect(compact("x")).toBe("—");
  });
});

describe("quote lines", () => {
  it("label each quote with its side, amount and price", () => {
    expect(quoteLabel(q("buy", "60010.00", "0.0100"))).toBe("bid quote 0.01 @ 60,010");
    expect(quoteLabel(q("sell", "60020.5", "0.02"), 12)).toBe("ask quote 0.02 @ 60,020.5 #12");
  });

  it("draw bids green and asks red, solid, highest price first", () => {
    const lines = quoteLines([book({ quotes: [q("buy", "60010"), q("sell", "60020"), q("buy", "60005")] })]);
    expect(lines.map((l) => [l.kind, l.price, l.color, l.style])).toEqual([
      ["ask", 60020, QUOTE_COLORS.sell, "solid"], ["bid", 60010, QUOTE_COLORS.buy, "solid"], ["bid", 60005, QUOTE_COLORS.buy, "solid"],
    ]);
    expect(QUOTE_COLORS.buy).not.toBe(QUOTE_COLORS.sell);
    expect(lines[1].title).toBe("bid quote 0.01 @ 60,010");
    expect(new Set(lines.map((l) => l.key)).size).toBe(3);
    expect(lines.every((l) => l.assignment_id === 7 && !l.watched)).toBe(true);
  });

  it("name the assignment only when several quote the market, and skip prices that are not prices", () => {
    const lines = quoteLines([book({ assignment_id: 9, quotes: [q("sell", "101")] }), book({ assignment_id: 3, quotes: [q("buy", "99"), q("buy", "")] }), book({ assignment_id: 4 })]);
    expect(lines.map((l) => l.title)).toEqual(["bid quote 0.01 @ 99 #3", "ask quote 0.01 @ 101 #9"]);
    expect(quoteLines([book({ quotes: [q("buy", "0"), q("sell", "abc")] })])).toEqual([]);
    expect(quoteLines([])).toEqual([]);
  });
});

describe("a quoting assignment's panel", () => {
  it("gives its inventory against the limit, P&L, fills per side and fill rate", () => {
    const s = quoteStats(book({ inventory: "0.03", max_position: "0.1", realized_pnl: "12.5", placed: 40, filled: 16, buys_filled: 9, sells_filled: 7, fill_rate: 0.4,
      quotes: [q("sell", "102"), q("buy", "98"), q("sell", "101"), q("buy", "99")] }));
    expect(s.inventory).toBe(0.03);
    expect(s.max).toBe(0.1);
    expect(s.used).toBeCloseTo(0.3);
    expect(s.pnl).toBe(12.5);
    expect([s.placed, s.filled, s.buys, s.sells]).toEqual([40, 16, 9, 7]);
    expect(s.fillRate).toBe("40 %");
    expect(s.bids.map((x) => x.price)).toEqual(["99", "98"]);
    expect(s.asks.map((x) => x.price)).toEqual(["101", "102"]);
  });

  it("has no limit without a max position, and no fill rate before a quote ended", () => {
    const s = quoteStats(book({ inventory: "0.5", realized_pnl: "-0.25" }));
    expect(s.max).toBeNull();
    expect(s.used).toBeNull();
    expect(s.pnl).toBe(-0.25);
    expect(s.fillRate).toBe("—");
    expect(s.bids).toEqual([]);
  });

  it("formats fill rates", () => {
    expect(formatRate(0)).toBe("0 %");
    expect(formatRate(0.025)).toBe("2.5 %");
    expect(formatRate(1)).toBe("100 %");
    expect(formatRate(null)).toBe("—");
  });
});

describe("triggers", () => {
  it("label tick assignments with their interval and leave candle ones alone", () => {
    expect(triggerLabel({ trigger: "tick", min_interval_ms: 1000 })).toBe("tick · 1000 ms");
    expect(triggerLabel({ trigger: "tick", min_interval_ms: 250 })).toBe("tick · 250 ms");
    expect(triggerLabel({ trigger: "candle", min_interval_ms: 1000 })).toBeNull();
    expect(triggerLabel({})).toBeNull();
    expect(isTickAssignment({ trigger: "tick" })).toBe(true);
    expect(isTickAssignment({ trigger: undefined })).toBe(false);
  });
});

describe("batched refreshes", () => {
  afterEach(() => vi.useRealTimers());

  it("refresh each assignment once per burst, and keep refreshing under a steady stream", () => {
    vi.useFakeTimers();
    const runs: number[][] = [];
    const b = batcher((ids) => runs.push(ids), 500);
    b.add(3); b.add(1); b.add(3);
    vi.advanceTimersByTime(499);
    expect(runs).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(runs).toEqual([[1, 3]]);
    for (let t = 0; t < 10; t++) { b.add(2); vi.advanceTimersByTime(100); } // an event every 100 ms
    expect(runs).toEqual([[1, 3], [2], [2]]);
    b.add(5);
    b.cancel();
    vi.advanceTimersByTime(1000);
    expect(runs).toHaveLength(3);
  });
});
