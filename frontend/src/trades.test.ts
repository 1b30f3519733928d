import { describe, expect, it } from "vitest";
import { dailyBars, equityPoints, exitLabel, tradesOf, tradesPath, tripLink } from "./trades";
import { duration, readBacktest, readHold } from "./backtest";

describe("the trades view", () => {
  it("reads whose trades the address asks for", () => {
    expect(tradesOf("?trader=4")).toEqual({ trader_id: 4 });
    expect(tradesOf("?trader=4&assignment=9")).toEqual({ assignment_id: 9 });
    expect(tradesOf("?trader=x")).toBeNull();
    expect(tradesOf("?assignment=-1")).toBeNull();
    expect(tradesPath({ assignment_id: 9 })).toBe("/trades?assignment=9");
  });

  it("links a trip to its market's chart, moved to the entry", () => {
    expect(tripLink({ market_id: 2, assignment_id: 7, entry_time: 120_000 })).toBe("/markets/2?assignment=7&at=120000");
    expect(tripLink({ market_id: 2, assignment_id: null, entry_time: 120_000 })).toBe("/markets/2?at=120000");
    expect(tripLink({ market_id: null, assignment_id: 7, entry_time: 1 })).toBeNull();
  });

  it("turns the equity curve into seconds and the days into bars", () => {
    expect(equityPoints([[60_500, 10], [60_900, 11], [1000, 9]])).toEqual([{ time: 1, value: 9 }, { time: 60, value: 11 }]);
    const bars = dailyBars([{ day: "2026-01-01", pnl: "-5", fees: "1", fills: 2 }, { day: "2026-01-02", pnl: "10", fees: "0.5", fills: 1 }]);
    expect(bars.map((b) => [b.height, b.up])).toEqual([[50, false], [100, true]]);
    expect(dailyBars([{ day: "2026-01-01", pnl: "0", fees: "0", fills: 1 }])[0].height).toBe(2);
  });

  it("says why a trip ended", () => {
    expect(exitLabel({ exit_time: null, exit_reason: null })).toBe("open");
    expect(exitLabel({ exit_time: 1, exit_reason: "reset" })).toBe("account reset");
  });
});

describe("a backtest's new numbers", () => {
  const T = 1_767_225_600_000; // 2026-01-01, epoch ms
  it("reads profit factor, average trade, fees, buy and hold, each trade's P&L % and fees", () => {
    const b = readBacktest({ status: "done", metrics: { final_equity: 1010, return_pct: 1, max_drawdown_pct: 2, profit_factor: 1.5,
      avg_trade_duration_s: 5400, fees_paid: 3.2, buy_and_hold_return_pct: -4 },
    trades: [{ entry_time: 60_000, entry_price: 1, exit_time: 120_000, exit_price: 2, qty: 1, pnl: 1, pnl_pct: 99.8, fees: 0.003 }],
    buy_and_hold: [[T + 60_000, 990], [T, 1000], ["x", 1]], plot: { sma: [[T, 1.5]] } });
    expect([b.metrics?.profit_factor, b.metrics?.avg_trade_duration_s, b.metrics?.fees_paid, b.metrics?.buy_and_hold_return_pct]).toEqual([1.5, 5400, 3.2, -4]);
    expect([b.trades[0].pnl_pct, b.trades[0].fees]).toEqual([99.8, 0.003]);
    expect(b.hold).toEqual([{ time: T / 1000, value: 1000 }, { time: T / 1000 + 60, value: 990 }]);
    expect(b.plot).toEqual({ sma: [{ time: T / 1000, value: 1.5 }] });
    const old = readBacktest({ status: "done", metrics: { final_equity: 1, return_pct: 0, max_drawdown_pct: 0 } });
    expect([old.metrics?.profit_factor, old.hold, old.plot]).toEqual([null, [], {}]);
    expect(readHold("x")).toEqual([]);
  });

  it("says durations as people do", () => {
    expect([duration(30), duration(600), duration(3600 * 3 + 1200), duration(86400 * 2 + 3600 * 4), duration(7200), duration(null), duration(-1)])
      .toEqual(["30 s", "10 min", "3 h 20 min", "2 d 4 h", "2 h", "—", "—"]);
  });
});
