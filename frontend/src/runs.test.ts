import { describe, expect, it } from "vitest";
import {
  checkSpan, compareLink, exportLinks, metricText, paramsText, parseRefs, progressSeries, returnLine, runLabel, runPage, settingsText, toggle,
  windowFields, type Run,
} from "./runs";

const T0 = Date.parse("2024-01-01T00:00:00Z");
const H = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

const run = (o: Partial<Run>): Run => ({
  ref: "backtest:3", kind: "backtest", id: 3, status: "done", strategy_id: 1, strategy: "SMA", version: 2, market_id: 1, exchange: "sim",
  symbol: "BTC/USD", timeframe: "5m", range: { from: null, to: null, first: null, last: null, candles: null }, settings: { fee: 0.001, lookback: 50 },
  params: { fast: 5 }, metrics: {}, created_at: "2024-01-02T00:00:00Z", ...o }) as Run;

describe("run history", () => {
  it("links each kind to its own page and its exports to the API", () => {
    expect(runPage({ kind: "backtest", id: 3 })).toBe("/backtests/3");
    expect(runPage({ kind: "study", id: 4 })).toBe("/research/4");
    expect(runPage({ kind: "walkforward", id: 5 })).toBe("/research/walkforward/5");
    expect(exportLinks("study", 4)).toEqual({ csv: "/api/runs/study/4/trades.csv", json: "/api/runs/study/4/export.json", html: "/api/runs/study/4/report.html" });
  });

  it("reads the runs to compare from the address: well-formed, once each, ten at most", () => {
    const link = compareLink(["backtest:3", "study:4"]);
    expect(link).toBe("/research/compare?runs=backtest%3A3,study%3A4");
    expect(parseRefs(link.split("?")[1])).toEqual(["backtest:3", "study:4"]);
    expect(parseRefs("?runs=backtest:3,,study:0,trade:2,backtest:3, walkforward:9 ,study:x")).toEqual(["backtest:3", "walkforward:9"]);
    expect(parseRefs(`?runs=${Array.from({ length: 12 }, (_, i) => `study:${i + 1}`).join(",")}`)).toHaveLength(10);
    expect(parseRefs("")).toEqual([]);
  });

  it("selects and unselects runs in the order they were picked", () => {
    expect(toggle(toggle(toggle([], "study:1"), "backtest:2"), "study:1")).toEqual(["backtest:2"]);
    expect(toggle(["a"], "b")).toEqual(["a", "b"]);
  });

  it("turns an equity curve into return % from the cash, one point a second", () => {
    const eq = [[T0, 10_000, 0], [T0 + 400, 10_100, 0], [T0 + 60_000, 9_500, 5.9], [T0 + 120_000, 11_000, 0]];
    const line = returnLine(eq, 10_000);
    expect(line.map((p) => p.time)).toEqual([T0 / 1000, T0 / 1000 + 60, T0 / 1000 + 120]); // the last of a second kept
    expect(line.map((p) => p.value)).toEqual([expect.closeTo(1), expect.closeTo(-5), expect.closeTo(10)]);
    // without the cash: from the first point; an empty or missing curve draws nothing
    expect(returnLine([[T0, 200, 0], [T0 + 60_000, 300, 0]])[1].value).toBe(50);
    expect(returnLine(null)).toEqual([]);
    expect(returnLine([[T0 + 60_000, 1, 0], [T0, 2, 0]], 1).map((p) => p.time)).toEqual([T0 / 1000, T0 / 1000 + 60]);
  });

  it("writes metrics, parameters and settings the way the tables show them", () => {
    expect(metricText("return_pct", 4.5)).toBe("+4.50 %");
    expect(metricText("return_pct", -1)).toBe("-1.00 %");
    expect(metricText("max_drawdown_pct", 2.345)).toBe("2.35 %");
    expect(metricText("sharpe", 1.23456)).toBe("1.235");
    expect(metricText("trade_count", 1234)).toBe("1,234");
    expect(metricText("wfe", null)).toBe("—");
    expect(metricText("sharpe", Number.NaN)).toBe("—");
    expect(paramsText({ fast: 5, slow: 20 })).toBe("fast=5, slow=20");
    expect(paramsText(null)).toBe("—");
    expect(runLabel(run({ kind: "study", id: 7 }))).toBe("Optimisation #7 · SMA v2");
    expect(settingsText(run({}))).toBe("fee 0.1 % · lookback 50");
    expect(settingsText(run({ kind: "study", settings: { trials: 30, objectives: ["sharpe", "max_drawdown"], fee: 0 } }))).toBe("30 trials · by sharpe, max_drawdown · fee 0 %");
    expect(settingsText(run({ kind: "walkforward", settings: { mode: "rolling", train: "2d", test: "12h", trials_per_window: 20, objectives: ["return"] } })))
      .toBe("rolling 2d/12h · 20 trials per window · by return");
    expect(settingsText(run({ kind: "walkforward", settings: { mode: "split", split: 0.7, trials_per_window: 5, objectives: ["sharpe"], fee: 0.001 } })))
      .toBe("split 0.7 · 5 trials per window · by sharpe · fee 0.1 %");
  });

  it("puts a walk-forward's in-sample and out-of-sample curves side by side per window", () => {
    // rolling: train 2 h, test 1 h; window 1's train overlaps window 0's
    const windows = [0, 1].map((i) => ({ index: i, train: { from: iso(T0 + i * H), to: iso(T0 + (i + 2) * H), candles: 24 }, test: { from: iso(T0 + (i + 2) * H), to: iso(T0 + (i + 3) * H), candles: 12 } }));
    const doc = {
      cash: 1000, windows,
      is_equity: [[0, T0, 1000, 0], [0, T0 + H, 1100, 0], [1, T0 + H, 1100, 0], [1, T0 + 2.5 * H, 1210, 0]],
      oos_equity: [[T0 + 2 * H, 1000, 0], [T0 + 2.5 * H, 1050, 0], [T0 + 3 * H, 1050, 0], [T0 + 3.9 * H, 945, 10]],
    };
    const { inSample, outOfSample } = progressSeries(doc);
    expect(inSample.map((p) => p.x)).toEqual([0, 0.5, 1, 1.75]);
    expect(inSample.map((p) => Math.round(p.y * 100) / 100)).toEqual([0, 10, 10, 21]);
    expect(outOfSample.map((p) => p.x)).toEqual([0, 0.5, 1, 1.9]);
    expect(outOfSample[3].y).toBeCloseTo(-5.5);
    // a point of an unknown window is left out
    expect(progressSeries({ ...doc, is_equity: [[7, T0, 1000, 0]], oos_equity: [[T0 - H, 1000, 0]] })).toEqual({ inSample: [], outOfSample: [] });
  });

  it("sends the window fields the mode needs, and checks a length before sending", () => {
    expect(windowFields("split", "12h", "4h", "0.7")).toEqual({ split: 0.7 });
    expect(windowFields("rolling", " 12h", "4h ", "0.7")).toEqual({ train: "12h", test: "4h" });
    expect(checkSpan("train", "30d")).toBeNull();
    expect(checkSpan("train", " 2 w ")).toBeNull();
    expect(checkSpan("test", "0h")).toEqual({ field: "test", message: "a length such as 30d, 12h, 90m or 2w" });
    expect(checkSpan("test", "12 hours")).not.toBeNull();
  });
});
