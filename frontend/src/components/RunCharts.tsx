import { useEffect, useRef } from "react";
import { createChart, LineSeries, LineStyle, type UTCTimestamp } from "lightweight-charts";
import type { LinePoint, XY } from "../runs";

export interface Line { label: string; color: string; points: LinePoint[] }

/** Several runs' equity on one chart (lightweight-charts), each as return % from its start so that runs of any
 *  cash share the scale; a dashed line at 0 %. */
export function ReturnsChart({ lines, testId = "compare-chart" }: { lines: Line[]; testId?: string }) {
  const host = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const c = createChart(host.current!, {
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: "#4a5468", fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif" },
      grid: { vertLines: { color: "#f0f2f6" }, horzLines: { color: "#f0f2f6" } },
      rightPriceScale: { borderColor: "#e4e7ee" },
      timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#e4e7ee", rightOffset: 0 },
    });
    lines.forEach((l, i) => {
      if (!l.points.length) return;
      const s = c.addSeries(LineSeries, { color: l.color, lineWidth: 2, priceLineVisible: false, title: l.label,
        priceFormat: { type: "custom", formatter: (v: number) => `${v.toFixed(2)}%` } });
      s.setData(l.points.map((p) => ({ time: p.time as UTCTimestamp, value: p.value })));
      if (i === 0) s.createPriceLine({ price: 0, color: "#9aa3b8", lineStyle: LineStyle.Dashed, lineWidth: 1, axisLabelVisible: false, title: "" });
    });
    c.timeScale().fitContent();
    return () => c.remove();
  }, [lines]);
  return (
    <>
      <div className="chart equity" ref={host} data-testid={testId} data-series={lines.filter((l) => l.points.length).length} />
      <div className="legend">{lines.map((l) => <span key={l.label} className="key"><i className="swatch" style={{ background: l.color }} /> {l.label}</span>)}</div>
    </>
  );
}

/** A walk-forward's chained in-sample and out-of-sample returns by window (SVG): each window one column, the
 *  in-sample curve across its train window, the out-of-sample one across its test window. */
export function ProgressChart({ inSample, outOfSample, windows }: { inSample: XY[]; outOfSample: XY[]; windows: number }) {
  const all = [...inSample, ...outOfSample];
  if (!all.length || windows < 1) return <p className="muted">No curve yet.</p>;
  const W = 1200, H = 300, L = 56, R = 12, T = 14, B = 30;
  const ys = [0, ...all.map((p) => p.y)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y1 - y0 < 1e-9) [y0, y1] = [y0 - 1, y1 + 1];
  const pad = (y1 - y0) * 0.06;
  [y0, y1] = [y0 - pad, y1 + pad];
  const sx = (x: number) => L + (x / windows) * (W - L - R);
  const sy = (y: number) => T + ((y1 - y) / (y1 - y0)) * (H - T - B);
  const path = (ps: XY[]) => ps.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
  const ticks = [y0 + pad, 0, y1 - pad].filter((v, i, a) => a.indexOf(v) === i);
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="progress" data-testid="wf-progress" role="img" aria-label="In sample and out of sample by window">
      {Array.from({ length: windows }, (_, w) => (
        <g key={w}>
          <line x1={sx(w)} x2={sx(w)} y1={T} y2={H - B} className="axis" />
          <text x={sx(w + 0.5)} y={H - 10} textAnchor="middle" className="axis-label">window {w}</text>
        </g>
      ))}
      {ticks.map((v) => (
        <g key={v}>
          <line x1={L} x2={W - R} y1={sy(v)} y2={sy(v)} className={v === 0 ? "zero" : "axis"} />
          <text x={L - 6} y={sy(v) + 4} textAnchor="end" className="axis-label">{v.toFixed(1)}%</text>
        </g>
      ))}
      <polyline points={path(inSample)} className="is" data-testid="wf-in-sample" data-points={inSample.length} />
      <polyline points={path(outOfSample)} className="oos" data-testid="wf-out-of-sample" data-points={outOfSample.length} />
    </svg>
  );
}
