import { afterEach, describe, expect, it, vi } from "vitest";
import { connectStream, initialLive, reduceLive, type OrderEvent, type StreamEvent } from "./stream";

const candle = (close: number, tf = "1m") => ({ type: "candle" as const, market_id: 1, exchange: "sim", symbol: "BTC/USD", tf, time: 60_000, open: 1, high: 1, low: 1, close, volume: 1 });
const order = (i: number, status = "filled", cid = `c${i}`): OrderEvent => ({ type: status === "filled" ? "fill" : "order", id: i, assignment_id: 3, client_order_id: cid, side: "buy", status, price: "1", filled: "1", symbol: "BTC/USD" });

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
    let s = reduceLive(initialLive, { type: "evaluation", assignment_id: 3, candle_time: 120_000, status: "ok", position: "long", error: null, symbol: "BTC/USD", tf: "1m" });
    s = reduceLive(s, { type: "evaluation", assignment_id: 3, candle_time: 60_000, status: "ok", position: "short", error: null, symbol: "BTC/USD", tf: "1m" });
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
});

describe("the stream socket", () => {
  class FakeSocket {
    static opened: FakeSocket[] = [];
    onopen: (() => void) | null = null;
    onmessage: ((m: { data: string }) => void) | null = null;
    onclose: ((e: { code: number }) => void) | null = null;
    closed = false;
    constructor(public url: string) { FakeSocket.opened.push(this); }
    close() { this.closed = true; }
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
