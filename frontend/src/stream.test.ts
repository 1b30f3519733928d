import { afterEach, describe, expect, it, vi } from "vitest";
import { connectStream, initialLive, parseEvent, parseTick, reduceLive, type CandleEvent, type EvaluationEvent, type OrderEvent, type StreamEvent, type TickEvent } from "./stream";

const candle = (close: number, tf = "1m"): CandleEvent => ({ type: "candle", market_id: 1, exchange: "sim", symbol: "BTC/USD", tf, time: 60_000, open: 1, high: 1, low: 1, close, volume: 1, closed: true });
const order = (i: number, status: OrderEvent["status"] = "filled", cid = `c${i}`): OrderEvent => ({
  type: status === "filled" ? "fill" : "order", id: i, assignment_id: 3, client_order_id: cid, symbol: "BTC/USD", side: "buy", amount: "1",
  status, order_type: "market", filled: status === "filled" ? "1" : "0", price: "1", fee: "0", reason: null, exit_reason: null,
});
const evaluation = (candle_time: number, position: EvaluationEvent["position"]): EvaluationEvent => ({
  type: "evaluation", assignment_id: 3, exchange: "sim", symbol: "BTC/USD", tf: "1m", candle_time, status: "ok", position, note: null, error: null, duration_ms: 1,
});

describe("live state", () => {
  it("keeps the last close per market and the direction it moved", () => {
    let s = reduceLive(initialLive, candle(42));
    expect(s.prices["sim:BTC/USD"]).toBe(42);
    expect(s.moves["sim:BTC/USD"]).toBeUndefined();
    s = reduceLive(s, candle(41, "5m"));
    expect(s.prices["sim:BTC/USD"]).toBe(41);
    expect(s.moves["sim:BTC/USD"]).toBe("down");
    expect(reduceLive(s, candle(41))).toBe(s);
  });

  it("records each assignment's last decision and ignores a late older one", () => {
    let s = reduceLive(initialLive, evaluation(120_000, "long"));
    s = reduceLive(s, evaluation(60_000, "short"));
    expect(s.lastDecision[3].position).toBe("long");
    expect(s.activity).toBe(2);
  });

  it("keeps a bounded list of orders, one row per order, and counts activity past the bound", () => {
    let s = initialLive;
    for (let i = 0; i < 60; i++) s = reduceLive(s, order(i));
    expect(s.recent).toHaveLength(50);
    expect(s.recent[0].id).toBe(59);
    expect(s.activity).toBe(60);
    s = reduceLive(s, order(100, "open", "same"));
    s = reduceLive(s, order(100, "filled", "same"));
    expect(s.recent.filter((o) => o.client_order_id === "same")).toHaveLength(1);
    expect(s.recent[0].status).toBe("filled");
  });

  it("ignores events it does not know", () => {
    expect(reduceLive(initialLive, { type: "subscribed", markets: null })).toBe(initialLive);
  });

  it("leaves ticks to the page that asked for them: the state stays the same object", () => {
    const s = reduceLive(initialLive, candle(42));
    const t: TickEvent = { type: "tick", market_id: 1, exchange: "sim", symbol: "BTC/USD", bid: 41, ask: 43, bid_size: 1, ask_size: 1, last: 42, time: 1 };
    expect(reduceLive(s, t)).toBe(s);
  });
});

describe("tick frames", () => {
  const frame = { type: "tick", market_id: 1, exchange: "sim", symbol: "BTC/USD", bid: 60010, ask: 60012.5, bid_size: 0.4, ask_size: 1.2, last: 60011, time: 1_700_000_000_000 };

  it("parse into a typed tick", () => {
    expect(parseEvent(JSON.stringify(frame))).toEqual(frame);
  });

  it("read decimal strings as numbers and default what the venue left out", () => {
    expect(parseTick({ type: "tick", market_id: 2, exchange: "sim", symbol: "ETH/USD", bid: "3000.5", ask: "3001" })).toEqual(
      { type: "tick", market_id: 2, exchange: "sim", symbol: "ETH/USD", bid: 3000.5, ask: 3001, bid_size: 0, ask_size: 0, last: 0, time: 0 });
    expect(parseTick({ ...frame, market_id: null })?.market_id).toBeNull();
    expect(parseTick({ ...frame, bid: 0 })?.bid).toBe(0); // an empty side is still a tick
  });

  it("are dropped without a market or a finite bid and ask", () => {
    expect(parseTick({ ...frame, bid: null })).toBeNull();
    expect(parseTick({ ...frame, ask: "n/a" })).toBeNull();
    expect(parseTick({ ...frame, symbol: undefined })).toBeNull();
    expect(parseEvent(JSON.stringify({ ...frame, ask: null }))).toBeNull();
  });

  it("leave other events as they are and skip frames without a type", () => {
    const c = candle(42);
    expect(parseEvent(JSON.stringify(c))).toEqual(c);
    expect(parseEvent("{}")).toBeNull();
    expect(parseEvent("[1]")).toBeNull();
    expect(parseEvent("null")).toBeNull();
    expect(parseEvent("{bad")).toBeNull();
  });
});

describe("the stream socket", () => {
  class FakeSocket {
    static opened: FakeSocket[] = [];
    onopen: (() => void) | null = null;
    onmessage: ((m: { data: string }) => void) | null = null;
    onclose: ((e: { code: number }) => void) | null = null;
    closed = false;
    sent: string[] = [];
    constructor(public url: string) { FakeSocket.opened.push(this); }
    close() { this.closed = true; }
    send(text: string) { this.sent.push(text); }
  }

  const setup = () => {
    FakeSocket.opened = [];
    vi.useFakeTimers();
    vi.stubGlobal("WebSocket", FakeSocket);
    vi.stubGlobal("location", { protocol: "https:", host: "example.com" });
  };
  afterEach(() => { vi.useRealTimers(); vi.unstubAllGlobals(); });

  it("opens /api/stream on the page's host, passes events on and skips frames that are not JSON", () => {
    setup();
    const events: StreamEvent[] = [];
    const statuses: string[] = [];
    const stop = connectStream((e) => events.push(e), { onStatus: (s) => statuses.push(s) });
    const ws = FakeSocket.opened[0];
    expect(ws.url).toBe("wss://example.com/api/stream");
    ws.onopen?.();
    ws.onmessage?.({ data: "not json" });
    ws.onmessage?.({ data: JSON.stringify({ type: "subscribed", markets: null }) });
    expect(events).toEqual([{ type: "subscribed", markets: null }]);
    expect(statuses).toEqual(["connecting", "live"]);
    stop();
    expect(ws.closed).toBe(true);
  });

  it("reconnects with a growing delay, and stops for good when closed by the page", () => {
    setup();
    const statuses: string[] = [];
    const stop = connectStream(() => {}, { onStatus: (s) => statuses.push(s) });
    FakeSocket.opened[0].onclose?.({ code: 1006 });
    expect(statuses.at(-1)).toBe("reconnecting");
    vi.advanceTimersByTime(999);
    expect(FakeSocket.opened).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.opened).toHaveLength(2); // after 1 s
    FakeSocket.opened[1].onclose?.({ code: 1006 });
    vi.advanceTimersByTime(1999);
    expect(FakeSocket.opened).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeSocket.opened).toHaveLength(3); // after 2 s more
    FakeSocket.opened[2].onclose?.({ code: 1006 });
    stop();
    vi.advanceTimersByTime(60_000);
    expect(FakeSocket.opened).toHaveLength(3);
  });

  it("asks for the chosen markets once open, again after a reconnect, and sends nothing unless asked", () => {
    setup();
    const conn = connectStream(() => {});
    const first = FakeSocket.opened[0];
    first.onopen?.();
    expect(first.sent).toEqual([]); // the server's default: every market's candles
    conn.subscribe([{ market_id: 7 }]);
    expect(first.sent).toEqual(['{"subscribe":[{"market_id":7}]}']);
    first.onclose?.({ code: 1006 });
    conn.subscribe([{ market_id: 8, timeframe: "5m" }]); // while reconnecting: kept for the next socket
    vi.advanceTimersByTime(1000);
    const second = FakeSocket.opened[1];
    expect(second.sent).toEqual([]);
    second.onopen?.();
    expect(second.sent).toEqual(['{"subscribe":[{"market_id":8,"timeframe":"5m"}]}']);
    conn.subscribe([]);
    expect(second.sent.at(-1)).toBe('{"subscribe":[]}');
    conn();
  });

  it("passes tick frames on parsed, and drops malformed ones", () => {
    setup();
    const events: StreamEvent[] = [];
    connectStream((e) => events.push(e));
    const ws = FakeSocket.opened[0];
    ws.onopen?.();
    ws.onmessage?.({ data: JSON.stringify({ type: "tick", market_id: 1, exchange: "sim", symbol: "BTC/USD", bid: "10", ask: 11 }) });
    ws.onmessage?.({ data: JSON.stringify({ type: "tick", market_id: 1, exchange: "sim", symbol: "BTC/USD", bid: null, ask: 11 }) });
    expect(events).toEqual([{ type: "tick", market_id: 1, exchange: "sim", symbol: "BTC/USD", bid: 10, ask: 11, bid_size: 0, ask_size: 0, last: 0, time: 0 }]);
  });

  it("does not reconnect when the server ends the session (4401), and says so", () => {
    setup();
    let ended = 0;
    connectStream(() => {}, { onSessionEnded: () => ended++ });
    FakeSocket.opened[0].onclose?.({ code: 4401 });
    vi.advanceTimersByTime(60_000);
    expect(ended).toBe(1);
    expect(FakeSocket.opened).toHaveLength(1);
  });
});
