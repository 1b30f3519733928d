// The live stream: candles, evaluations, orders and fills over /api/stream, with reconnects.

export type StreamEvent =
  | { type: "candle"; exchange: string; symbol: string; tf: string; time: number; open: number; high: number; low: number; close: number; volume: number }
  | { type: "evaluation"; assignment_id: number; candle_time: number; status: string; position: string | null; error: string | null; symbol: string; tf: string }
  | { type: "order" | "fill"; id: number; assignment_id: number | null; client_order_id: string; side: string; status: string; price: string | null; filled: string; symbol: string }
  | { type: "error"; detail: string };

export interface LiveState {
  prices: Record<string, number>; // "exchange:symbol" -> last close (1m)
  lastDecision: Record<number, { position: string | null; status: string; error: string | null; candle_time: number }>;
  recent: StreamEvent[]; // newest first, bounded
}

export const initialLive: LiveState = { prices: {}, lastDecision: {}, recent: [] };
const MAX_RECENT = 50;

/** Fold one stream event into the live state (pure: the dashboard and tests share it). */
export function reduceLive(state: LiveState, ev: StreamEvent): LiveState {
  switch (ev.type) {
    case "candle":
      if (ev.tf !== "1m") return state;
      return { ...state, prices: { ...state.prices, [`${ev.exchange}:${ev.symbol}`]: ev.close } };
    case "evaluation":
      return {
        ...state,
        lastDecision: { ...state.lastDecision, [ev.assignment_id]: { position: ev.position, status: ev.status, error: ev.error, candle_time: ev.candle_time } },
      };
    case "order":
    case "fill":
      return { ...state, recent: [ev, ...state.recent].slice(0, MAX_RECENT) };
    default:
      return state;
  }
}

export function connectStream(onEvent: (ev: StreamEvent) => void): () => void {
  let ws: WebSocket | null = null;
  let closed = false;
  let delay = 500;
  const open = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/api/stream`);
    ws.onopen = () => (delay = 500);
    ws.onmessage = (m) => {
      try {
        onEvent(JSON.parse(m.data) as StreamEvent);
      } catch {
        /* ignore a malformed frame */
      }
    };
    ws.onclose = () => {
      if (!closed) setTimeout(open, (delay = Math.min(delay * 2, 10000)));
    };
  };
  open();
  return () => {
    closed = true;
    ws?.close();
  };
}
