// Turning API data into what the chart draws.
import type { Assignment, Candle, Evaluation, Order } from "./api/client";

export interface Bar { time: number; open: number; high: number; low: number; close: number; volume?: number }
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
  for (const c of candles) byTime.set(Math.floor(c.time / 1000), { time: Math.floor(c.time / 1000), open: c.open, high: c.high, low: c.low, close: c.close, volume: c.volume });
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

// -- a strategy's own series (plot = {name = value} in decide's table) -----------------------------------------
export interface PlotPoint { time: number; value: number } // seconds
/** Series by name, drawn as lines on the candle chart (in the order of their names: Lua hands a table's keys
 *  over in no set order, and a series keeps its colour from one page to the next). */
export type PlotSeries = Record<string, PlotPoint[]>;
export const PLOT_MAX = 8; // the sandbox's limit: a chart draws at most this many series
export const PLOT_COLORS = ["#8a4fd6", "#d69a2c", "#2ca6b8", "#b8437a", "#5b6b2c", "#2c5bd6", "#c2553a", "#6b7280"];

/** The series a run of evaluations plotted, oldest first (the first PLOT_MAX names; errors plot nothing). */
export function plotSeries(evals: Pick<Evaluation, "candle_time" | "plot">[]): PlotSeries {
  const out: PlotSeries = {};
  for (const e of [...evals].sort((a, b) => a.candle_time - b.candle_time)) {
    for (const [name, value] of Object.entries(e.plot ?? {})) {
      if (typeof value !== "number" || !Number.isFinite(value)) continue;
      if (!(name in out) && Object.keys(out).length >= PLOT_MAX) continue;
      const list = (out[name] ??= []);
      const time = Math.floor(e.candle_time / 1000);
      if (list.length && list[list.length - 1].time === time) list[list.length - 1] = { time, value };
      else list.push({ time, value });
    }
  }
  return byName(out);
}

const byName = (plots: PlotSeries): PlotSeries =>
  Object.fromEntries(Object.entries(plots).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** A backtest's plot ({name: [[time ms, value], ...]}), checked: unknown shapes and non-numbers are left out. */
export function readPlot(raw: unknown): PlotSeries {
  const out: PlotSeries = {};
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return out;
  for (const [name, points] of Object.entries(raw as Record<string, unknown>)) {
    if (!Array.isArray(points) || Object.keys(out).length >= PLOT_MAX) continue;
    const list: PlotPoint[] = [];
    for (const p of points) {
      if (!Array.isArray(p) || typeof p[0] !== "number" || typeof p[1] !== "number" || !Number.isFinite(p[1])) continue;
      const time = Math.floor(p[0] / 1000);
      if (!list.length || time > list[list.length - 1].time) list.push({ time, value: p[1] });
    }
    if (list.length) out[name] = list;
  }
  return byName(out);
}

/** The values of each series at a bar's time (for the legend), in the series' order; missing ones left out. */
export function plotValuesAt(plots: PlotSeries, time: number): [string, number][] {
  const out: [string, number][] = [];
  for (const [name, list] of Object.entries(plots)) {
    let lo = 0, hi = list.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].time === time) { out.push([name, list[mid].value]); break; }
      if (list[mid].time < time) lo = mid + 1; else hi = mid - 1;
    }
  }
  return out;
}

// -- markers that do not overlap --------------------------------------------------------------------------------
const CHAR_PX = 6.2; // the chart's marker text, about
const TEXT_PAD_PX = 10;

/** Markers made readable at the chart's zoom (``pxPerBar``: pixels between bars of ``tfSeconds``): markers of one bar on one side
 *  become one (their texts joined, the first one's shape and colour), and a text is kept only where it has room
 *  beside the previous text on the same side (above the bars or below them; a fill's, drawn at its price, beside
 *  any); the others keep their shape and lose their text (the legend and the tables say what they are). */
export function declutter(markers: Marker[], pxPerBar: number, tfSeconds: number): Marker[] {
  const merged: Marker[] = [];
  const byKey = new Map<string, Marker>();
  for (const m of [...markers].sort((a, b) => a.time - b.time)) {
    const key = m.position === "atPriceMiddle" ? `${m.time}|${m.position}|${m.price}` : `${m.time}|${m.position}`;
    const seen = byKey.get(key);
    if (seen) {
      if (m.text && !seen.text.split(" · ").includes(m.text)) seen.text = seen.text ? `${seen.text} · ${m.text}` : m.text;
      continue;
    }
    const copy = { ...m };
    byKey.set(key, copy);
    merged.push(copy);
  }
  const px = Math.max(0.5, pxPerBar);
  const lastEnd: Record<string, number> = {}; // the right edge of the last text of each side, in bars
  const step = Math.max(1, tfSeconds);
  for (const m of merged) {
    if (!m.text) continue;
    const bar = m.time / step;
    const half = (m.text.length * CHAR_PX + TEXT_PAD_PX) / 2 / px;
    // A fill's text sits at its price, anywhere between the texts above and below the bars: it needs room
    // on every side, and takes it from every side.
    const lanes = m.position === "atPriceMiddle" ? ["aboveBar", "belowBar", "atPriceMiddle"] : [m.position, "atPriceMiddle"];
    if (lanes.some((lane) => lane in lastEnd && bar - half < lastEnd[lane])) { m.text = ""; continue; }
    for (const lane of m.position === "atPriceMiddle" ? lanes : [m.position]) lastEnd[lane] = Math.max(lastEnd[lane] ?? -Infinity, bar + half);
  }
  return merged;
}

/** The logical range (bar indices), ``width`` bars wide, that shows ``time`` in the middle, or as near the
 *  middle as the bars allow (a trade near either end: no empty half chart). */
export function focusRange(bars: Bar[], time: number, width: number): { from: number; to: number } | null {
  if (!bars.length) return null;
  let lo = 0, hi = bars.length - 1;
  while (lo < hi) { // the last bar opening at or before time
    const mid = (lo + hi + 1) >> 1;
    if (bars[mid].time <= time) lo = mid; else hi = mid - 1;
  }
  const half = Math.max(10, Math.floor(width / 2));
  let from = lo - half, to = lo + half;
  const last = bars.length - 1 + 4; // the chart's own right margin
  if (to > last) { from -= to - last; to = last; }
  if (from < -4) { to += -4 - from; from = -4; }
  return { from, to: Math.min(to, Math.max(last, from + 2 * half)) };
}
