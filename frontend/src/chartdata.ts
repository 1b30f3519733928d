// Turning API data into what the chart draws.
import type { Candle, Evaluation, Order } from "./api/client";

export interface Bar { time: number; open: number; high: number; low: number; close: number }
export interface Marker { time: number; position: "aboveBar" | "belowBar"; color: string; shape: "arrowUp" | "arrowDown" | "circle"; text: string }

/** Candles in seconds (the chart's unit), sorted and de-duplicated by time. */
export function toBars(candles: Candle[]): Bar[] {
  const byTime = new Map<number, Bar>();
  for (const c of candles) byTime.set(Math.floor(c.time / 1000), { time: Math.floor(c.time / 1000), open: c.open, high: c.high, low: c.low, close: c.close });
  return [...byTime.values()].sort((a, b) => a.time - b.time);
}

/** Merge a live candle into the bars (replace the same time, else append if newer). */
export function mergeBar(bars: Bar[], c: Bar): Bar[] {
  if (bars.length && bars[bars.length - 1].time === c.time) return [...bars.slice(0, -1), c];
  if (bars.length && bars[bars.length - 1].time > c.time) return bars;
  return [...bars, c];
}

/** Decisions that changed position, and filled orders, as chart markers (sorted, one per time and kind). */
export function toMarkers(evals: Evaluation[], orders: Order[], tfSeconds = 60): Marker[] {
  const markers: Marker[] = [];
  let last: string | null = null;
  for (const e of [...evals].sort((a, b) => a.candle_time - b.candle_time)) {
    if (e.status === "error") {
      markers.push({ time: Math.floor(e.candle_time / 1000), position: "aboveBar", color: "#d64545", shape: "circle", text: "error" });
      continue;
    }
    if (e.position && e.position !== "neutral" && e.position !== last) {
      markers.push({ time: Math.floor(e.candle_time / 1000), position: e.position === "long" ? "belowBar" : "aboveBar",
        color: e.position === "long" ? "#2f9e6e" : "#c2553a", shape: e.position === "long" ? "arrowUp" : "arrowDown", text: e.position });
      last = e.position;
    }
  }
  for (const o of orders) {
    if (o.status !== "filled" || o.candle_time == null) continue;
    // The fill is at the next candle's open.
    markers.push({ time: Math.floor(o.candle_time / 1000) + tfSeconds, position: o.side === "buy" ? "belowBar" : "aboveBar",
      color: "#3b6fd8", shape: "circle", text: `${o.side} @ ${Number(o.price).toPrecision(6)}` });
  }
  return markers.sort((a, b) => a.time - b.time);
}
