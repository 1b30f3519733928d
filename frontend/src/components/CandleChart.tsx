import { useEffect, useRef } from "react";
import { createChart, CandlestickSeries, createSeriesMarkers, type IChartApi, type ISeriesApi, type UTCTimestamp, type ISeriesMarkersPluginApi, type Time } from "lightweight-charts";
import type { Bar, Marker } from "../chartdata";

/** A candlestick chart (TradingView lightweight-charts) with decision and fill markers. */
export function CandleChart({ bars, markers }: { bars: Bar[]; markers: Marker[] }) {
  const host = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const series = useRef<ISeriesApi<"Candlestick"> | null>(null);
  const marks = useRef<ISeriesMarkersPluginApi<Time> | null>(null);

  useEffect(() => {
    const c = createChart(host.current!, {
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: "#334" },
      grid: { vertLines: { color: "#eef0f4" }, horzLines: { color: "#eef0f4" } },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    series.current = c.addSeries(CandlestickSeries, { upColor: "#2f9e6e", downColor: "#c2553a", borderVisible: false, wickUpColor: "#2f9e6e", wickDownColor: "#c2553a" });
    marks.current = createSeriesMarkers(series.current, []);
    chart.current = c;
    return () => c.remove();
  }, []);

  useEffect(() => {
    series.current?.setData(bars.map((b) => ({ ...b, time: b.time as UTCTimestamp })));
  }, [bars]);

  useEffect(() => {
    marks.current?.setMarkers(markers.map((m) => ({ ...m, time: m.time as UTCTimestamp })));
  }, [markers]);

  return <div className="chart" ref={host} data-testid="chart" data-markers={markers.length} />;
}
