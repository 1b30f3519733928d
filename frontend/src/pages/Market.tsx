import { useEffect, useMemo, useState } from "react";
import { api, type Evaluation, type Order } from "../api/client";
import { CandleChart } from "../components/CandleChart";
import { Card, Loading, fmt, time } from "../components/ui";
import { mergeBar, toBars, toMarkers, type Bar } from "../chartdata";
import type { StreamEvent } from "../stream";

const TF_SECONDS: Record<string, number> = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400 };

export function MarketPage({ id, subscribe }: { id: number; subscribe: (f: (ev: StreamEvent) => void) => () => void }) {
  const assignmentId = Number(new URLSearchParams(location.search).get("assignment")) || null;
  const [tf, setTf] = useState("1m");
  const [bars, setBars] = useState<Bar[] | null>(null);
  const [evals, setEvals] = useState<Evaluation[]>([]);
  const [orders, setOrders] = useState<Order[]>([]);
  const [market, setMarket] = useState<{ symbol: string; exchange: string } | null>(null);

  useEffect(() => {
    api.markets().then((m) => setMarket(m.items.find((x) => x.id === id) ?? null));
  }, [id]);
  useEffect(() => {
    setBars(null);
    api.candles(id, tf, 300).then((c) => setBars(toBars(c)));
  }, [id, tf]);
  const refreshActivity = () => {
    if (!assignmentId) return;
    api.evaluations(assignmentId, 300).then((p) => setEvals(p.items));
    api.orders({ assignment_id: assignmentId, limit: 200 }).then((p) => setOrders(p.items));
  };
  useEffect(refreshActivity, [assignmentId]);
  useEffect(() => subscribe((ev) => {
    if (ev.type === "candle" && market && ev.exchange === market.exchange && ev.symbol === market.symbol && ev.tf === tf) {
      setBars((b) => (b ? mergeBar(b, { time: Math.floor(ev.time / 1000), open: ev.open, high: ev.high, low: ev.low, close: ev.close }) : b));
    }
    if ((ev.type === "evaluation" || ev.type === "fill" || ev.type === "order") && ev.assignment_id === assignmentId) refreshActivity();
  }), [market, tf, assignmentId]); // eslint-disable-line react-hooks/exhaustive-deps

  const markers = useMemo(() => toMarkers(evals, orders, TF_SECONDS[tf]), [evals, orders, tf]);
  const fills = orders.filter((o) => o.status === "filled");
  return (
    <div className="market-page">
      <Card title={market ? `${market.symbol} · ${market.exchange}` : "Market"} actions={
        <div className="segmented">{Object.keys(TF_SECONDS).map((t) => <button key={t} className={t === tf ? "on" : ""} onClick={() => setTf(t)}>{t}</button>)}</div>
      }>
        {bars ? <CandleChart bars={bars} markers={markers} /> : <Loading />}
        <div className="legend muted">{assignmentId ? <>Arrows: assignment #{assignmentId}'s decisions · dots: fills at the next open</> : "Open a market from an assignment to see its decisions and fills."}</div>
      </Card>
      {assignmentId && (
        <div className="grid">
          <Card title="Decisions">
            <table>
              <thead><tr><th>Candle</th><th>Decision</th><th className="num">ms</th></tr></thead>
              <tbody data-testid="decisions">
                {evals.slice(0, 12).map((e) => (
                  <tr key={e.id}><td className="muted">{time(e.candle_time)}</td>
                    <td>{e.status === "ok" ? <span className={`pill ${e.position}`}>{e.position}</span> : <span className="pill error" title={e.error ?? ""}>{e.error?.slice(0, 80)}</span>}</td>
                    <td className="num">{fmt(e.duration_ms, 3)}</td></tr>
                ))}
              </tbody>
            </table>
          </Card>
          <Card title="Fills">
            <table>
              <thead><tr><th>Candle</th><th>Side</th><th className="num">Qty</th><th className="num">Price</th></tr></thead>
              <tbody data-testid="fills">
                {fills.slice(0, 12).map((o) => (
                  <tr key={o.id}><td className="muted">{o.candle_time ? time(o.candle_time) : ""}</td><td className={o.side === "buy" ? "up" : "down"}>{o.side}</td>
                    <td className="num">{fmt(o.filled, 6)}</td><td className="num">{fmt(o.price)}</td></tr>
                ))}
              </tbody>
            </table>
          </Card>
        </div>
      )}
    </div>
  );
}
