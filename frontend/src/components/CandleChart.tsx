import { useEffect, useRef } from "react";
import {
  createChart, CandlestickSeries, AreaSeries, HistogramSeries, LineSeries, createSeriesMarkers, LineStyle,
  type IChartApi, type ISeriesApi, type IPriceLine, type AutoscaleInfo, type UTCTimestamp, type ISeriesMarkersPluginApi, type Time, type SeriesMarker,
  type MouseEventParams,
} from "lightweight-charts";
import { COLORS, PLOT_COLORS, declutter, focusRange, plotValuesAt, type Bar, type Marker, type PlotPoint, type PlotSeries, type PriceLine } from "../chartdata";
import type { CurvePoint } from "../backtest";
import { formatTime } from "../time";
import { price as showPrice } from "./ui";

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
const NO_PLOTS: PlotSeries = {};
const DEFAULT_WIDTH = 80; // bars shown around a trade the chart is moved to

/** Where to move the chart: a time (seconds) in the middle; a new ``key`` moves it again to the same time. */
export interface Focus { time: number; key: number }

/** The length of one bar (seconds): the smallest gap between the first bars. */
function barSeconds(bars: Bar[]): number {
  let step = Infinity;
  for (let i = 1; i < Math.min(bars.length, 50); i++) step = Math.min(step, bars[i].time - bars[i - 1].time || Infinity);
  return Number.isFinite(step) ? step : 60;
}

const volumeText = (v: number) => (v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e4 ? `${(v / 1e3).toFixed(1)}k` : v.toLocaleString("en-US", { maximumFractionDigits: 4 }));

/** A candlestick chart (TradingView lightweight-charts) with volume below the candles, the strategy's own series
 *  (``plots``) as lines, decision and fill markers (texts kept only where they have room at the current zoom),
 *  horizontal price lines (an open position's stop and target, dashed; a market maker's resting quotes, solid and
 *  thin; the price scale stretches to keep them in view), and a legend with the hovered candle's open, high, low,
 *  close, volume and series values. ``focus`` moves the chart to a time (a trade clicked in a table). */
export function CandleChart({ bars, markers, lines = NO_LINES, height, plots = NO_PLOTS, focus = null }: {
  bars: Bar[]; markers: Marker[]; lines?: PriceLine[]; height?: number; plots?: PlotSeries; focus?: Focus | null;
}) {
  const host = useRef<HTMLDivElement>(null);
  const legend = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const series = useRef<ISeriesApi<"Candlestick"> | null>(null);
  const volume = useRef<ISeriesApi<"Histogram"> | null>(null);
  const plotLines = useRef(new Map<string, ISeriesApi<"Line">>());
  const marks = useRef<ISeriesMarkersPluginApi<Time> | null>(null);
  const drawn = useRef<IPriceLine[]>([]);
  const levels = useRef<number[]>([]);
  const first = useRef(true);
  const focused = useRef<number | null>(null);
  // what the event handlers read (they are made once, with the chart)
  const data = useRef({ bars, markers, plots, byTime: new Map<number, Bar>(), spacing: 0 });
  data.current.bars = bars;
  data.current.markers = markers;
  data.current.plots = plots;

  /** The legend's text: the candle at ``time`` (the last one without), its volume and the series' values. */
  const showLegend = (time: number | null) => {
    const el = legend.current;
    if (!el) return;
    const d = data.current;
    const bar = time !== null ? d.byTime.get(time) : d.bars[d.bars.length - 1];
    el.replaceChildren();
    if (!bar) return;
    const part = (label: string, value: string, cls = "") => {
      const s = document.createElement("span");
      s.className = cls;
      const b = document.createElement("b");
      b.textContent = label;
      s.append(b, ` ${value}`);
      el.append(s);
    };
    const dir = bar.close >= bar.open ? "up" : "down";
    part("O", showPrice(bar.open), dir);
    part("H", showPrice(bar.high), dir);
    part("L", showPrice(bar.low), dir);
    part("C", showPrice(bar.close), dir);
    if (bar.volume !== undefined) part("V", volumeText(bar.volume));
    const names = Object.keys(d.plots);
    for (const [name, value] of plotValuesAt(d.plots, bar.time)) {
      part(name, showPrice(value), "series");
      (el.lastChild as HTMLElement).style.color = PLOT_COLORS[names.indexOf(name) % PLOT_COLORS.length];
    }
    el.dataset.time = String(bar.time);
  };

  /** The markers, decluttered for the chart's current spacing between bars. */
  const applyMarkers = () => {
    const c = chart.current;
    if (!c || !marks.current) return;
    const d = data.current;
    const spacing = c.timeScale().options().barSpacing;
    d.spacing = spacing;
    const shown = declutter(d.markers, spacing, barSeconds(d.bars));
    marks.current.setMarkers(shown.map((m) => ({ ...m, time: m.time as UTCTimestamp }) as SeriesMarker<Time>));
    if (host.current) host.current.dataset.markerTexts = String(shown.filter((m) => m.text).length);
  };

  useEffect(() => {
    const c = createChart(host.current!, BASE);
    series.current = c.addSeries(CandlestickSeries, { upColor: COLORS.up, downColor: COLORS.down, borderVisible: false, wickUpColor: COLORS.up, wickDownColor: COLORS.down,
      autoscaleInfoProvider: (original: () => AutoscaleInfo | null) => {
        const r = original();
        if (!r?.priceRange || !levels.current.length) return r;
        return { ...r, priceRange: { minValue: Math.min(r.priceRange.minValue, ...levels.current), maxValue: Math.max(r.priceRange.maxValue, ...levels.current) } };
      } });
    series.current.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.22 } });
    // Volume: bars at the foot of the chart, on a scale of their own (no axis labels of it to crowd the prices).
    volume.current = c.addSeries(HistogramSeries, { priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false, priceLineVisible: false });
    c.priceScale("volume").applyOptions({ scaleMargins: { top: 0.82, bottom: 0 }, visible: false });
    marks.current = createSeriesMarkers(series.current, []);
    chart.current = c;
    const onMove = (p: MouseEventParams<Time>) => showLegend(typeof p.time === "number" ? p.time : null);
    c.subscribeCrosshairMove(onMove);
    // Texts of markers are kept or dropped again when the zoom changes the room between bars.
    const onRange = () => {
      const el = host.current;
      const range = c.timeScale().getVisibleLogicalRange();
      const d = data.current;
      if (el && range && d.bars.length) {
        const at = (i: number) => d.bars[Math.max(0, Math.min(d.bars.length - 1, Math.round(i)))].time;
        el.dataset.from = String(at(range.from));
        el.dataset.to = String(at(range.to));
      }
      const spacing = c.timeScale().options().barSpacing;
      if (Math.abs(spacing - d.spacing) > d.spacing * 0.15) applyMarkers();
    };
    c.timeScale().subscribeVisibleLogicalRangeChange(onRange);
    return () => {
      c.unsubscribeCrosshairMove(onMove);
      c.timeScale().unsubscribeVisibleLogicalRangeChange(onRange);
      c.remove();
      plotLines.current.clear();
    };
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const s = series.current;
    if (!s) return;
    data.current.byTime = new Map(bars.map((b) => [b.time, b]));
    s.setData(bars.map((b) => ({ time: b.time as UTCTimestamp, open: b.open, high: b.high, low: b.low, close: b.close })));
    const withVolume = bars.some((b) => (b.volume ?? 0) > 0);
    volume.current?.setData(withVolume ? bars.map((b) => ({ time: b.time as UTCTimestamp, value: b.volume ?? 0,
      color: b.close >= b.open ? "rgba(47,158,110,.32)" : "rgba(194,85,58,.32)" })) : []);
    if (host.current) host.current.dataset.volume = withVolume ? "1" : "0";
    if (first.current && bars.length) {
      // Start on the last candles, about 7 px each (120 at most), rather than squeezing the whole history in.
      const n = Math.max(30, Math.min(120, Math.floor((host.current?.clientWidth ?? 840) / 7)));
      chart.current?.timeScale().setVisibleLogicalRange({ from: Math.max(0, bars.length - n), to: bars.length + 3 });
      first.current = false;
    }
    showLegend(null);
  }, [bars]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const names = Object.keys(plots);
    for (const [name, line] of plotLines.current) {
      if (!names.includes(name)) { c.removeSeries(line); plotLines.current.delete(name); }
    }
    names.forEach((name, i) => {
      let line = plotLines.current.get(name);
      if (!line) {
        // no last-value badge or price line: the price axis keeps the candles' own
        line = c.addSeries(LineSeries, { color: PLOT_COLORS[i % PLOT_COLORS.length], lineWidth: 2, priceLineVisible: false, lastValueVisible: false,
          crosshairMarkerVisible: false, title: "" });
        plotLines.current.set(name, line);
      } else {
        line.applyOptions({ color: PLOT_COLORS[i % PLOT_COLORS.length] });
      }
      line.setData(plots[name].map((p: PlotPoint) => ({ time: p.time as UTCTimestamp, value: p.value })));
    });
    if (host.current) host.current.dataset.plots = names.join(",");
    showLegend(null);
  }, [plots]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    const s = series.current;
    if (!s) return;
    for (const l of drawn.current) s.removePriceLine(l);
    levels.current = lines.map((l) => l.price);
    drawn.current = lines.map((l) => s.createPriceLine({ id: l.key, price: l.price, color: l.color, lineWidth: l.style === "solid" ? 1 : 2,
      lineStyle: l.style === "solid" ? LineStyle.Solid : LineStyle.Dashed, axisLabelVisible: true, title: l.title }));
  }, [lines]);

  useEffect(applyMarkers, [markers, bars]); // eslint-disable-line react-hooks/exhaustive-deps

  // Move to a trade: once per focus, as soon as the candles are there.
  useEffect(() => {
    const c = chart.current;
    if (!c || !focus || !bars.length || focused.current === focus.key) return;
    const now = c.timeScale().getVisibleLogicalRange();
    const width = now ? Math.min(Math.max(30, now.to - now.from), 200) : DEFAULT_WIDTH;
    const range = focusRange(bars, focus.time, width);
    if (!range) return;
    c.timeScale().setVisibleLogicalRange(range);
    focused.current = focus.key;
    first.current = false;
    if (host.current) host.current.dataset.focus = String(focus.time);
  }, [focus, bars]);

  // Counts for the browser tests: decision arrows, fills (drawn at their price), and the lines drawn.
  const arrows = markers.filter((m) => m.shape !== "circle").length;
  const fills = markers.filter((m) => m.position === "atPriceMiddle").length;
  return (
    <div className="chart-box">
      <div className="chart" style={height ? { height } : undefined} ref={host} data-testid="chart" data-markers={markers.length}
        data-arrows={arrows} data-fills={fills} data-bars={bars.length} data-lines={lines.map((l) => `${l.title}@${l.price}`).join(",")} />
      <div className="ohlc-legend" ref={legend} data-testid="ohlc-legend" aria-live="off" />
    </div>
  );
}

/** The names and colours of a chart's series, under it. */
export function PlotLegend({ plots }: { plots: PlotSeries }) {
  const names = Object.keys(plots);
  if (!names.length) return null;
  return (
    <span className="plot-legend" data-testid="plot-legend">
      {names.map((n, i) => <span key={n} className="key"><i className="swatch" style={{ background: PLOT_COLORS[i % PLOT_COLORS.length] }} /> {n}</span>)}
    </span>
  );
}

export interface HoldPoint { time: number; value: number } // seconds

/** Equity (top pane) and drawdown below zero (bottom pane) of a backtest, with buying and holding beside the
 *  equity (dashed). The whole curve is in view at any width (refitted when the chart is resized, with room at
 *  both ends so the first and last time labels are not cut); only the equity has a value badge on the axis. */
export function EquityChart({ curve, cash, hold }: { curve: CurvePoint[]; cash?: number; hold?: HoldPoint[] }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current!;
    const c = createChart(el, { ...BASE, timeScale: { ...BASE.timeScale, rightOffset: 0 }, handleScroll: false, handleScale: false });
    const equity = c.addSeries(AreaSeries, { lineColor: COLORS.fill, topColor: "rgba(44,91,214,.25)", bottomColor: "rgba(44,91,214,.02)", lineWidth: 2, priceLineVisible: false });
    equity.setData(curve.map((p) => ({ time: p.time as UTCTimestamp, value: p.equity })));
    // the start as a line without its own badge: two badges at nearly the same price covered each other
    if (cash) equity.createPriceLine({ price: cash, color: "#9aa3b8", lineStyle: LineStyle.Dashed, lineWidth: 1, axisLabelVisible: false, title: "" });
    if (hold?.length) {
      const h = c.addSeries(LineSeries, { color: "#8a93a8", lineWidth: 1, lineStyle: LineStyle.Dashed, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false });
      h.setData(hold.map((p) => ({ time: p.time as UTCTimestamp, value: p.value })));
    }
    const dd = c.addSeries(AreaSeries, { lineColor: COLORS.down, topColor: "rgba(194,85,58,.05)", bottomColor: "rgba(194,85,58,.35)", lineWidth: 1, priceLineVisible: false,
      priceFormat: { type: "custom", formatter: (v: number) => `${v.toFixed(1)}%` } }, 1);
    dd.setData(curve.map((p) => ({ time: p.time as UTCTimestamp, value: -p.drawdown })));
    c.panes()[1]?.setHeight(90);
    const fit = () => {
      const n = curve.length;
      if (!n) return;
      const w = Math.max(120, el.clientWidth - 70); // less the price scale
      const pad = Math.ceil((28 * n) / Math.max(40, w - 56)); // about 28 px at each end, in bars
      c.timeScale().setVisibleLogicalRange({ from: -pad, to: n - 1 + pad });
    };
    fit();
    let width = el.clientWidth;
    const resized = new ResizeObserver(() => {
      if (el.clientWidth !== width) { width = el.clientWidth; requestAnimationFrame(fit); }
    });
    resized.observe(el);
    return () => { resized.disconnect(); c.remove(); };
  }, [curve, cash, hold]);
  return (
    <>
      <div className="chart equity" ref={host} data-testid="equity-chart" data-points={curve.length} data-hold={hold?.length ?? 0} />
      {hold?.length ? (
        <div className="legend muted" data-testid="equity-legend">
          <span className="key"><i className="swatch" style={{ background: COLORS.fill }} /> strategy</span>
          <span className="key"><i className="swatch dashed" /> buy and hold</span>
          {cash ? <span className="key"><i className="swatch dashed light" /> start ({cash.toLocaleString("en-US", { maximumFractionDigits: 2 })})</span> : null}
        </div>
      ) : null}
    </>
  );
}

/** A line over time (an account's equity, [time s, value]), all of it in view at any width. */
export function LineChart({ points, testId, base }: { points: HoldPoint[]; testId: string; base?: number | null }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = host.current!;
    const c = createChart(el, { ...BASE, timeScale: { ...BASE.timeScale, rightOffset: 0 }, handleScroll: false, handleScale: false });
    const line = c.addSeries(AreaSeries, { lineColor: COLORS.fill, topColor: "rgba(44,91,214,.2)", bottomColor: "rgba(44,91,214,.02)", lineWidth: 2, priceLineVisible: false });
    line.setData(points.map((p) => ({ time: p.time as UTCTimestamp, value: p.value })));
    if (base !== null && base !== undefined) line.createPriceLine({ price: base, color: "#9aa3b8", lineStyle: LineStyle.Dashed, lineWidth: 1, axisLabelVisible: false, title: "" });
    const fit = () => {
      const n = points.length;
      if (!n) return;
      const pad = Math.ceil((28 * n) / Math.max(40, el.clientWidth - 126));
      c.timeScale().setVisibleLogicalRange({ from: -pad, to: n - 1 + pad });
    };
    fit();
    let width = el.clientWidth;
    const resized = new ResizeObserver(() => { if (el.clientWidth !== width) { width = el.clientWidth; requestAnimationFrame(fit); } });
    resized.observe(el);
    return () => { resized.disconnect(); c.remove(); };
  }, [points, base]);
  return <div className="chart equity" ref={host} data-testid={testId} data-points={points.length} />;
}
