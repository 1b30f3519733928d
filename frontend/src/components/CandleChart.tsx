import { useEffect, useRef } from "react";
import {
  createChart, CandlestickSeries, AreaSeries, createSeriesMarkers, LineStyle,
  type IChartApi, type ISeriesApi, type IPriceLine, type AutoscaleInfo, type UTCTimestamp, type ISeriesMarkersPluginApi, type Time, type SeriesMarker,
} from "lightweight-charts";
import { COLORS, type Bar, type Marker, type PriceLine } from "../chartdata";
import type { CurvePoint } from "../backtest";
import { formatTime } from "../time";

const BASE = {
  autoSize: true,
  layout: { background: { color: "#ffffff" }, textColor: "#4a5468", fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" },
  grid: { vertLines: { color: "#f0f2f6" }, horzLines: { color: "#f0f2f6" } },
  rightPriceScale: { borderColor: "#e4e7ee" },
  timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#e4e7ee", rightOffset: 4 },
  // The crosshair's time reads like every other time in the app (the axis is UTC already).
  localization: { timeFormatter: (t: Time) => (typeof t === "number" ? formatTime(t * 1000) : String(t)) },
};

const NO_LINES: PriceLine[] = [];

/** A candlestick chart (TradingView lightweight-charts) with decision and fill markers, and horizontal
 *  price lines (an open position's stop and target, dashed; a market maker's resting quotes, solid and thin);
 *  the price scale stretches to keep the lines in view. */
export function CandleChart({ bars, markers, lines = NO_LINES, height }: { bars: Bar[]; markers: Marker[]; lines?: PriceLine[]; height?: number }) {
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const series = useRef<ISeriesApi<"Candlestick"> | null>(null);
  const marks = useRef<ISeriesMarkersPluginApi<Time> | null>(null);
  const drawn = useRef<IPriceLine[]>([]);
  const levels = useRef<number[]>([]);
  const first = useRef(true);

  useEffect(() => {
    const c = createChart(host.current!, BASE);
    series.current = c.addSeries(CandlestickSeries, { upColor: COLORS.up, downColor: COLORS.down, borderVisible: false, wickUpColor: COLORS.up, wickDownColor: COLORS.down,
      autoscaleInfoProvider: (original: () => AutoscaleInfo | null) => {
        const r = original();
        if (!r?.priceRange || !levels.current.length) return r;
        return { ...r, priceRange: { minValue: Math.min(r.priceRange.minValue, ...levels.current), maxValue: Math.max(r.priceRange.maxValue, ...levels.current) } };
      } });
    marks.current = createSeriesMarkers(series.current, []);
    chart.current = c;
    return () => c.remove();
  }, []);

  useEffect(() => {
    const s = series.current;
    if (!s) return;
    s.setData(bars.map((b) => ({ ...b, time: b.time as UTCTimestamp })));
    if (first.current && bars.length) {
      // Start on the last candles, about 7 px each (120 at most), rather than squeezing the whole history in.
      const n = Math.max(30, Math.min(120, Math.floor((host.current?.clientWidth ?? 840) / 7)));
      chart.current?.timeScale().setVisibleLogicalRange({ from: Math.max(0, bars.length - n), to: bars.length + 3 });
      first.current = false;
    }
  }, [bars]);

  useEffect(() => {
    const s = series.current;
    if (!s) return;
    for (const l of drawn.current) s.removePriceLine(l);
    levels.current = lines.map((l) => l.price);
    drawn.current = lines.map((l) => s.createPriceLine({ id: l.key, price: l.price, color: l.color, lineWidth: l.style === "solid" ? 1 : 2,
      lineStyle: l.style === "solid" ? LineStyle.Solid : LineStyle.Dashed, axisLabelVisible: true, title: l.title }));
  }, [lines]);

  useEffect(() => {
    marks.current?.setMarkers(markers.map((m) => ({ ...m, time: m.time as UTCTimestamp }) as SeriesMarker<Time>));
  }, [markers]);

  // Counts for the browser tests: decision arrows, fills (drawn at their price), and the lines drawn.
  const arrows = markers.filter((m) => m.shape !== "circle").length;
  const fills = markers.filter((m) => m.position === "atPriceMiddle").length;
  return <div className="chart" style={height ? { height } : undefined} ref={host} data-testid="chart" data-markers={markers.length}
    data-arrows={arrows} data-fills={fills} data-bars={bars.length} data-lines={lines.map((l) => `${l.title}@${l.price}`).join(",")} />;
}

/** Equity (top pane) and drawdown below zero (bottom pane) of a backtest. */
export function EquityChart({ curve, cash }: { curve: CurvePoint[]; cash?: number }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const c = createChart(host.current!, { ...BASE, timeScale: { ...BASE.timeScale, rightOffset: 0 } });
    const equity = c.addSeries(AreaSeries, { lineColor: COLORS.fill, topColor: "rgba(44,91,214,.25)", bottomColor: "rgba(44,91,214,.02)", lineWidth: 2, priceLineVisible: false });
    equity.setData(curve.map((p) => ({ time: p.time as UTCTimestamp, value: p.equity })));
    if (cash) equity.createPriceLine({ price: cash, color: "#9aa3b8", lineStyle: LineStyle.Dashed, lineWidth: 1, axisLabelVisible: true, title: "start" });
    const dd = c.addSeries(AreaSeries, { lineColor: COLORS.down, topColor: "rgba(194,85,58,.05)", bottomColor: "rgba(194,85,58,.35)", lineWidth: 1, priceLineVisible: false,
      priceFormat: { type: "custom", formatter: (v: number) => `${v.toFixed(1)}%` } }, 1);
    dd.setData(curve.map((p) => ({ time: p.time as UTCTimestamp, value: -p.drawdown })));
    c.panes()[1]?.setHeight(90);
    c.timeScale().fitContent();
    return () => c.remove();
  }, [curve, cash]);
  return <div className="chart equity" ref={host} data-testid="equity-chart" data-points={curve.length} />;
}
