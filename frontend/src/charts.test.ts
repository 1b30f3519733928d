import { describe, expect, it } from "vitest";
import { PLOT_MAX, declutter, focusRange, plotSeries, plotValuesAt, readPlot, toBars, type Bar, type Marker } from "./chartdata";

const mk = (time: number, position: Marker["position"], text: string, extra: Partial<Marker> = {}): Marker =>
  ({ time, position, text, color: "#000", shape: position === "atPriceMiddle" ? "circle" : "arrowUp", ...extra });

describe("volume", () => {
  it("comes with each bar", () => {
    expect(toBars([{ time: 60_000, open: 1, high: 2, low: 1, close: 2, volume: 7.5 }])[0].volume).toBe(7.5);
  });
});

describe("a strategy's own series", () => {
  it("are read from evaluations in time order, the newest value of a candle kept, errors and non-numbers left out", () => {
    const plots = plotSeries([
      { candle_time: 180_000, plot: { fast: 3, slow: 1 } },
      { candle_time: 60_000, plot: { fast: 1 } },
      { candle_time: 120_000, plot: null },
      { candle_time: 240_000, plot: { fast: Number.NaN } as Record<string, number> },
    ]);
    expect(plots).toEqual({ fast: [{ time: 60, value: 1 }, { time: 180, value: 3 }], slow: [{ time: 180, value: 1 }] });
    expect(Object.keys(plots)).toEqual(["fast", "slow"]);
    // in the order of their names, however they came
    expect(Object.keys(plotSeries([{ candle_time: 60_000, plot: { slow: 1, fast: 2 } }]))).toEqual(["fast", "slow"]);
    expect(Object.keys(readPlot({ slow: [[60_000, 1]], fast: [[60_000, 2]] }))).toEqual(["fast", "slow"]);
  });

  it("keep the first eight names", () => {
    const evals = Array.from({ length: 12 }, (_, i) => ({ candle_time: (i + 1) * 60_000, plot: { [`s${i}`]: i } }));
    expect(Object.keys(plotSeries(evals))).toHaveLength(PLOT_MAX);
    expect(Object.keys(plotSeries(evals))).toEqual(["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"]);
  });

  it("are read from a backtest's document, anything else ignored", () => {
    expect(readPlot({ sma: [[60_000, 1.5], [120_000, 2], ["x", 1], [180_000, null], [120_000, 9]], bad: "x", empty: [] }))
      .toEqual({ sma: [{ time: 60, value: 1.5 }, { time: 120, value: 2 }] });
    expect(readPlot(null)).toEqual({});
    expect(readPlot([1, 2])).toEqual({});
  });

  it("give the legend their values at a candle", () => {
    const plots = { a: [{ time: 60, value: 1 }, { time: 120, value: 2 }], b: [{ time: 120, value: 5 }] };
    expect(plotValuesAt(plots, 120)).toEqual([["a", 2], ["b", 5]]);
    expect(plotValuesAt(plots, 60)).toEqual([["a", 1]]);
    expect(plotValuesAt(plots, 90)).toEqual([]);
  });
});

describe("markers that do not overlap", () => {
  it("join the markers of one bar on one side", () => {
    const out = declutter([mk(60, "aboveBar", "short"), mk(60, "aboveBar", "error"), mk(60, "belowBar", "long")], 20, 60);
    expect(out.map((m) => [m.position, m.text])).toEqual([["aboveBar", "short · error"], ["belowBar", "long"]]);
  });

  it("keep a text only where it has room beside the previous one on its side", () => {
    const markers = [mk(60, "belowBar", "buy"), mk(120, "belowBar", "buy"), mk(120, "aboveBar", "sell"), mk(600, "belowBar", "buy")];
    // 6 px between bars: "buy" needs about 29 px, five bars
    const tight = declutter(markers, 6, 60);
    expect(tight.map((m) => m.text)).toEqual(["buy", "", "sell", "buy"]);
    expect(tight).toHaveLength(4); // every shape stays
    // zoomed in, every text fits
    expect(declutter(markers, 40, 60).every((m) => m.text)).toBe(true);
  });

  it("give a fill's text, at its price, room from the texts above and below the bars", () => {
    const out = declutter([mk(60, "belowBar", "long"), mk(120, "atPriceMiddle", "buy", { price: 100 }), mk(600, "aboveBar", "short")], 8, 60);
    expect(out.map((m) => m.text)).toEqual(["long", "", "short"]);
    const first = declutter([mk(60, "atPriceMiddle", "buy", { price: 100 }), mk(120, "aboveBar", "short")], 8, 60);
    expect(first.map((m) => m.text)).toEqual(["buy", ""]);
  });

  it("treat fills at different prices of one bar apart, and leave the caller's markers untouched", () => {
    const markers = [mk(60, "atPriceMiddle", "buy", { price: 100 }), mk(60, "atPriceMiddle", "sell (stop)", { price: 95 })];
    const out = declutter(markers, 50, 60);
    expect(out).toHaveLength(2);
    expect(out[1].text).toBe(""); // its text would cover the first one's
    expect(markers[1].text).toBe("sell (stop)");
  });
});

describe("moving the chart to a trade", () => {
  const bars: Bar[] = Array.from({ length: 100 }, (_, i) => ({ time: (i + 1) * 60, open: 1, high: 1, low: 1, close: 1 }));
  it("centres the bar that holds the time", () => {
    expect(focusRange(bars, 50 * 60 + 30, 40)).toEqual({ from: 29, to: 69 });
    // near either end: as near the middle as the bars allow
    expect(focusRange(bars, 0, 40)).toEqual({ from: -4, to: 36 });
    expect(focusRange(bars, 99 * 60, 40)).toEqual({ from: 63, to: 103 });
    expect(focusRange(bars.slice(0, 5), 120, 40)).toEqual({ from: -4, to: 36 });
    expect(focusRange([], 60, 40)).toBeNull();
  });
});
