// The live stream: candles, evaluations, orders and fills over /api/stream, with reconnects.

export interface CandleEvent {
  type: "candle"; market_id: number | null; exchange: string; symbol: string; tf: string;
  time: number; open: number; high: number; low: number; close: number; volume: number; closed?: boolean;
}
export interface EvaluationEvent {
  type: "evaluation"; assignment_id: number; candle_time: number; status: string; position: string | null;
  error: string | null; note?: string | null; symbol: string; tf: string; duration_ms?: number;
}
export interface OrderEvent {
  type: "order" | "fill"; id: number; assignment_id: number | null; client_order_id: string; side: string;
  status: string; price: string | null; filled: string; amount?: string; symbol: string; reason?: string | null;
  order_type?: string; // market | limit | stop | take_profit | trailing_stop (`type` is the event's kind)
  exit_reason?: string | null; // a filled sell: signal | stop_loss | take_profit | trailing_stop
}
export type StreamEvent = CandleEvent | EvaluationEvent | OrderEvent | { type: "error"; detail: string } | { type: "subscribed"; markets: number[] | null };

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

/** Fold one stream event into the live state (pure: the dashboard and tests share it). */
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

/** Keep a socket open to /api/stream, reconnecting with backoff; returns a function that closes it. */
export function connectStream(
  onEvent: (ev: StreamEvent) => void,
  { onStatus, onSessionEnded }: { onStatus?: (s: StreamStatus) => void; onSessionEnded?: () => void } = {},
): () => void {
  let ws: WebSocket | null = null;
  let closed = false;
  let delay = 500;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const open = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/api/stream`);
    ws.onopen = () => { delay = 500; onStatus?.("live"); };
    ws.onmessage = (m) => {
      try {
        onEvent(JSON.parse(m.data) as StreamEvent);
      } catch {
        /* ignore a malformed frame */
      }
    };
    ws.onclose = (e) => {
      if (closed) return;
      if (e.code === SESSION_ENDED) { onSessionEnded?.(); return; }
      onStatus?.("reconnecting");
      timer = setTimeout(open, (delay = Math.min(delay * 2, 10000)));
    };
  };
  onStatus?.("connecting");
  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    ws?.close();
  };
}
