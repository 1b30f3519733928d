// Turning API data into what the chart draws.
import type { Candle, Evaluation, Order } from "./api/client";

export interface Bar { time: number; open: number; high: number; low: number; close: number }
export interface Marker {
  time: number;
  position: "aboveBar" | "belowBar" | "atPriceMiddle";
  price?: number;
  color: string;
  shape: "arrowUp" | "arrowDown" | "circle";
  text: string;
}

export const COLORS = { up: "#2f9e6e", down: "#c2553a", fill: "#2c5bd6", error: "#d64545" };

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

/** Decisions that changed position, errors, and filled orders, as chart markers sorted by time.
 *  An order's fill is drawn at its price, on the candle after the decision (fills happen at the next open). */
export function toMarkers(evals: Evaluation[], orders: Order[], tfSeconds = 60): Marker[] {
  const markers: Marker[] = [];
  let last: string | null = null;
  for (const e of [...evals].sort((a, b) => a.candle_time - b.candle_time)) {
    const time = Math.floor(e.candle_time / 1000);
    if (e.status === "error") {
      markers.push({ time, position: "aboveBar", color: COLORS.error, shape: "circle", text: "error" });
      continue;
    }
    if (e.position && e.position !== "neutral" && e.position !== last) {
      const long = e.position === "long";
      markers.push({ time, position: long ? "belowBar" : "aboveBar", color: long ? COLORS.up : COLORS.down, shape: long ? "arrowUp" : "arrowDown", text: e.position });
      last = e.position;
    }
  }
  for (const o of orders) {
    if (o.status !== "filled" || o.candle_time == null) continue;
    const p = Number(o.price);
    markers.push({ time: Math.floor(o.candle_time / 1000) + tfSeconds, position: Number.isFinite(p) ? "atPriceMiddle" : o.side === "buy" ? "belowBar" : "aboveBar",
      price: Number.isFinite(p) ? p : undefined, color: COLORS.fill, shape: "circle", text: o.side });
  }
  return markers.sort((a, b) => a.time - b.time);
}

/** Put each marker on the bar that contains its time (a 1m decision on a 5m chart goes on its 5m bar);
 *  markers before the first bar or after the last one's period are left out. */
export function snapMarkers(markers: Marker[], bars: Bar[], tfSeconds: number): Marker[] {
  if (!bars.length) return [];
  const out: Marker[] = [];
  let i = 0;
  for (const m of [...markers].sort((a, b) => a.time - b.time)) {
    if (m.time < bars[0].time || m.time >= bars[bars.length - 1].time + tfSeconds) continue;
    while (i + 1 < bars.length && bars[i + 1].time <= m.time) i++;
    out.push({ ...m, time: bars[i].time });
  }
  return out;
}
