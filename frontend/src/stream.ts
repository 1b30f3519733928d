// The live stream: candles, ticks, evaluations, orders and fills over /api/stream, with reconnects.
// The frames' types are generated from the OpenAPI document (web.stream.StreamEvent, bus.messages.UserEvent).
import type { Schemas } from "./api/client";

/** Any frame the socket sends; `type` tells them apart. */
export type StreamEvent = Schemas["StreamEvent"];
export type CandleEvent = Schemas["CandleEvent"];
export type EvaluationEvent = Schemas["EvaluationEvent"];
/** An order's state changed (`type` "order"), or it filled ("fill"); `order_type` is the order's type. */
export type OrderEvent = Schemas["OrderEvent"] | Schemas["FillEvent"];
/** The top of a market's book: sent only for markets the socket subscribed to by id, at most 4 a second each.
 *  A side the venue left empty comes as 0; `time` is the venue's (epoch ms, 0 when it gave none). */
export type TickEvent = Schemas["TickEvent"];
/** What else the user's own subject carries: a pause and the kill switch (as they happen), a daily loss limit
 *  reached; the in-browser alerts and the alerts that could not be delivered are in alerts.ts. */
export type NoticeEvent = Schemas["PausedEvent"] | Schemas["KillSwitchEvent"] | Schemas["LossLimitEvent"];

/** What a socket asks for: these markets' candles (of one timeframe, or all) and ticks. An empty list: every market's candles, no ticks. */
export interface MarketFilter { market_id: number; timeframe?: string }

const num = (v: unknown): number | undefined => {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
};

/** A tick frame as the page uses it, or null when it lacks a market or a finite bid and ask
 *  (numbers may come as decimal strings; missing sizes, last and time are 0). */
export function parseTick(x: Record<string, unknown>): TickEvent | null {
  const bid = num(x.bid), ask = num(x.ask);
  if (typeof x.exchange !== "string" || typeof x.symbol !== "string" || bid === undefined || ask === undefined) return null;
  const id = num(x.market_id);
  return {
    type: "tick", market_id: id !== undefined && Number.isInteger(id) ? id : null, exchange: x.exchange, symbol: x.symbol,
    bid, ask, bid_size: num(x.bid_size) ?? 0, ask_size: num(x.ask_size) ?? 0, last: num(x.last) ?? 0, time: num(x.time) ?? 0,
  };
}

/** One text frame as an event, or null for a frame that is not JSON, has no type, or is a malformed tick. */
export function parseEvent(text: string): StreamEvent | null {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch {
    return null;
  }
  if (!x || typeof x !== "object" || typeof (x as { type?: unknown }).type !== "string") return null;
  const o = x as Record<string, unknown>;
  return o.type === "tick" ? parseTick(o) : (o as unknown as StreamEvent);
}

export interface Decision { position: string | null; status: string; error: string | null; candle_time: number }

export interface LiveState {
  prices: Record<string, number>; // "exchange:symbol" -> last close
  moves: Record<string, "up" | "down">; // direction of the last change, for colouring
  lastDecision: Record<number, Decision>;
  recent: OrderEvent[]; // newest first, bounded
  activity: number; // counts evaluations, orders and fills: pages reload their lists when it changes
}

export const initialLive: LiveState = { prices: {}, moves: {}, lastDecision: {}, recent: [], activity: 0 };
const MAX_RECENT = 50;

export const priceKey = (exchange: string, symbol: string) => `${exchange}:${symbol}`;

/** Fold one stream event into the live state (pure: the dashboard and tests share it).
 *  Ticks are left to the market page that asked for them: the state (and every page) stays as it was. */
export function reduceLive(state: LiveState, ev: StreamEvent): LiveState {
  switch (ev.type) {
    case "candle": {
      const key = priceKey(ev.exchange, ev.symbol);
      const before = state.prices[key];
      if (before === ev.close) return state;
      const moves = before === undefined ? state.moves : { ...state.moves, [key]: ev.close > before ? "up" as const : "down" as const };
      return { ...state, prices: { ...state.prices, [key]: ev.close }, moves };
    }
    case "evaluation": {
      const seen = state.lastDecision[ev.assignment_id];
      if (seen && seen.candle_time > ev.candle_time) return { ...state, activity: state.activity + 1 }; // a late one
      const d: Decision = { position: ev.position, status: ev.status, error: ev.error, candle_time: ev.candle_time };
      return { ...state, lastDecision: { ...state.lastDecision, [ev.assignment_id]: d }, activity: state.activity + 1 };
    }
    case "order":
    case "fill": {
      // One row per order: a fill replaces the same order's earlier "open".
      const rest = state.recent.filter((o) => o.client_order_id !== ev.client_order_id);
      return { ...state, recent: [ev, ...rest].slice(0, MAX_RECENT), activity: state.activity + 1 };
    }
    default:
      return state;
  }
}

export type StreamStatus = "connecting" | "live" | "reconnecting";
const SESSION_ENDED = 4401;

/** A function that closes the socket, and `subscribe` to choose its markets (kept across reconnects). */
export type StreamConnection = (() => void) & { subscribe: (filters: MarketFilter[]) => void };

/** Keep a socket open to /api/stream, reconnecting with backoff; returns a function that closes it. */
export function connectStream(
  onEvent: (ev: StreamEvent) => void,
  { onStatus, onSessionEnded }: { onStatus?: (s: StreamStatus) => void; onSessionEnded?: () => void } = {},
): StreamConnection {
  let ws: WebSocket | null = null;
  let live = false;
  let closed = false;
  let delay = 500;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let filters: MarketFilter[] | null = null; // null: never chosen, the server's default (every market)
  const send = () => { if (ws && live && filters) ws.send(JSON.stringify({ subscribe: filters })); };
  const open = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/api/stream`);
    ws.onopen = () => { delay = 500; live = true; send(); onStatus?.("live"); };
    ws.onmessage = (m) => {
      const ev = typeof m.data === "string" ? parseEvent(m.data) : null;
      if (ev) onEvent(ev); // a malformed frame is skipped
    };
    ws.onclose = (e) => {
      live = false;
      if (closed) return;
      if (e.code === SESSION_ENDED) { onSessionEnded?.(); return; }
      onStatus?.("reconnecting");
      timer = setTimeout(open, (delay = Math.min(delay * 2, 10000)));
    };
  };
  onStatus?.("connecting");
  open();
  const close = () => {
    closed = true;
    clearTimeout(timer);
    ws?.close();
  };
  return Object.assign(close, {
    subscribe: (f: MarketFilter[]) => {
      filters = f.map((x) => ({ ...x }));
      send(); // now if the socket is open; else when it opens
    },
  });
}
