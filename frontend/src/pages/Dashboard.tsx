import { api } from "../api/client";
import { Card, Empty, Loading, fmt, time } from "../components/ui";
import { useLoad } from "../hooks";
import { Link } from "../router";
import type { LiveState } from "../stream";

export function Dashboard({ live }: { live: LiveState }) {
  const markets = useLoad(() => api.markets());
  const assignments = useLoad(() => api.assignments());
  const strategies = useLoad(() => api.strategies());
  const positions = useLoad(() => api.positions(), [live.recent.length]);
  const orders = useLoad(() => api.orders({ limit: 10 }), [live.recent.length]);
  const names = new Map((strategies.data?.items ?? []).map((s) => [s.id, s.name]));
  const marketName = new Map((markets.data?.items ?? []).map((m) => [m.id, m.symbol]));
  return (
    <div className="grid">
      <Card title="Markets">
        {!markets.data ? <Loading /> : markets.data.items.length === 0 ? <Empty>No markets yet: the exchanges are starting.</Empty> : (
          <table>
            <thead><tr><th>Market</th><th>Exchange</th><th className="num">Last price</th></tr></thead>
            <tbody>
              {markets.data.items.map((m) => (
                <tr key={m.id}>
                  <td><Link to={`/markets/${m.id}`}>{m.symbol}</Link></td>
                  <td className="muted">{m.exchange}</td>
                  <td className="num" data-testid={`price-${m.symbol}`}>{fmt(live.prices[`${m.exchange}:${m.symbol}`] ?? m.last_price, 2)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <Card title="Your assignments" actions={<Link className="button" to="/assignments">Manage</Link>}>
        {!assignments.data ? <Loading /> : assignments.data.items.length === 0 ? (
          <Empty>Nothing running. <Link to="/strategies/new">Write a strategy</Link>, then assign it to a market.</Empty>
        ) : (
          <table>
            <thead><tr><th>Strategy</th><th>Market</th><th>Last decision</th><th>State</th></tr></thead>
            <tbody>
              {assignments.data.items.map((a) => {
                const d = live.lastDecision[a.id];
                return (
                  <tr key={a.id}>
                    <td>{names.get(a.strategy_id) ?? `#${a.strategy_id}`}</td>
                    <td><Link to={`/markets/${a.market_id}?assignment=${a.id}`}>{marketName.get(a.market_id)} {a.timeframe}</Link></td>
                    <td>{d ? (d.status === "ok" ? <span className={`pill ${d.position}`}>{d.position}</span> : <span className="pill error" title={d.error ?? ""}>error</span>) : <span className="muted">{a.last_position ?? "—"}</span>}</td>
                    <td>{a.enabled ? <span className="pill ok">running</span> : <span className="pill paused" title={a.paused_reason ?? ""}>paused</span>}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Card>
      <Card title="Open positions and P&L">
        {!positions.data ? <Loading /> : positions.data.length === 0 ? <Empty>No positions yet.</Empty> : (
          <table>
            <thead><tr><th>Market</th><th className="num">Qty</th><th className="num">Value</th><th className="num">Unrealized</th><th className="num">Realized</th></tr></thead>
            <tbody>
              {positions.data.map((p) => (
                <tr key={p.assignment_id}>
                  <td>{p.symbol} <span className="muted">#{p.assignment_id}</span></td>
                  <td className="num">{fmt(p.qty, 6)}</td>
                  <td className="num">{fmt(p.value)}</td>
                  <td className={`num ${Number(p.unrealized_pnl) >= 0 ? "up" : "down"}`}>{fmt(p.unrealized_pnl)}</td>
                  <td className={`num ${Number(p.realized_pnl) >= 0 ? "up" : "down"}`}>{fmt(p.realized_pnl)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <Card title="Recent orders">
        {!orders.data ? <Loading /> : orders.data.items.length === 0 ? <Empty>No orders yet.</Empty> : (
          <table>
            <thead><tr><th>When</th><th>Market</th><th>Side</th><th className="num">Amount</th><th className="num">Price</th><th>Status</th></tr></thead>
            <tbody>
              {orders.data.items.map((o) => (
                <tr key={o.id}>
                  <td className="muted">{time(o.created_at)}</td>
                  <td>{o.symbol}</td>
                  <td className={o.side === "buy" ? "up" : "down"}>{o.side}</td>
                  <td className="num">{fmt(o.amount, 6)}</td>
                  <td className="num">{fmt(o.price)}</td>
                  <td><span className={`pill ${o.status}`} title={o.reason ?? ""}>{o.status}</span></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </div>
  );
}
