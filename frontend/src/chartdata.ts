// Turning API data into what the chart draws.
import type { Assignment, Candle, Evaluation, Order } from "./api/client";

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
      price: Number.isFinite(p) ? p : undefined, color: COLORS.fill, shape: "circle", text: fillText(o) });
  }
  return markers.sort((a, b) => a.time - b.time);
}

const EXIT_SHORT: Record<string, string> = { stop_loss: "stop", take_profit: "target", trailing_stop: "trail" };

/** A fill marker's text: the side, and for a protective exit which one ("sell (stop)"). */
function fillText(o: Order): string {
  const why = o.side === "sell" ? EXIT_SHORT[o.exit_reason ?? ""] : undefined;
  return why ? `${o.side} (${why})` : o.side;
}

/** A horizontal line across the chart at a price: a protected position's stop or target (dashed), or a
 *  resting quote of a market-making assignment (solid, thin). */
export interface PriceLine {
  key: string; price: number; color: string; title: string; kind: "stop" | "target" | "bid" | "ask"; assignment_id: number; watched: boolean;
  style?: "dashed" | "solid";
}

/** The stop and target of every assignment on `marketId` that holds a protected position, as price lines
 *  ("stop #12" red, "target #12" green), ordered by assignment. */
export function protectionLines(assignments: Assignment[], marketId: number): PriceLine[] {
  const out: PriceLine[] = [];
  for (const a of [...assignments].sort((x, y) => x.id - y.id)) {
    const p = a.protection;
    if (a.market_id !== marketId || !p || !(Number(a.position_qty) > 0)) continue;
    for (const [kind, raw, color] of [["stop", p.stop, COLORS.down], ["target", p.target, COLORS.up]] as const) {
      const price = raw === null || raw === undefined || raw === "" ? NaN : Number(raw);
      if (!Number.isFinite(price) || price <= 0) continue;
      out.push({ key: `${kind}-${a.id}`, price, color, title: `${kind} #${a.id}`, kind, assignment_id: a.id, watched: p.watched });
    }
  }
  return out;
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
