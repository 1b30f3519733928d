import { api, type Assignment } from "../api/client";
import { CloseButton, FlattenButton } from "../components/Close";
import { OpenOrders, OrderKind, SizeNote } from "../components/Orders";
import { Card, Loader, PageHead, Stat, When, fmt, price, signed, tone } from "../components/ui";
import { useLoad, useThrottled } from "../hooks";
import { openOrders } from "../orders";
import { Link } from "../router";
import { priceKey, type LiveState } from "../stream";

export function DecisionPill({ a, live }: { a: Assignment; live: LiveState }) {
  const d = live.lastDecision[a.id];
  if (d && d.status !== "ok") return <span className="pill error" title={d.error ?? ""}>error</span>;
  const pos = d?.position ?? a.last_position;
  return pos ? <span className={`pill ${pos}`} data-testid="last-decision">{pos}</span> : <span className="muted">—</span>;
}

export function Dashboard({ live }: { live: LiveState }) {
  const tick = useThrottled(live.activity, 1500);
  const markets = useLoad(() => api.markets());
  const assignments = useLoad(() => api.assignments(), [tick]);
  const strategies = useLoad(() => api.strategies());
  const positions = useLoad(() => api.positions(), [tick]);
  // The newest orders, and those resting on an exchange (protective exits, limit entries) however old.
  const orders = useLoad(() => api.orders({ limit: 100 }), [tick]);
  const resting = useLoad(() => api.orders({ status: "open", limit: 500 }), [tick]);
  const names = new Map((strategies.data?.items ?? []).map((s) => [s.id, s.name]));
  const marketName = new Map((markets.data?.items ?? []).map((m) => [m.id, m.symbol]));
  const pos = positions.data ?? [];
  const unrealized = pos.reduce((s, p) => s + Number(p.unrealized_pnl), 0);
  const realized = pos.reduce((s, p) => s + Number(p.realized_pnl), 0);
  const open = openOrders(resting.data?.items ?? []);
  const marketOf = new Map((assignments.data?.items ?? []).map((a) => [a.id, a.market_id]));
  const running = (assignments.data?.items ?? []).filter((a) => a.enabled).length;
  return (
    <>
      <PageHead title="Dashboard" />
      <div className="stats">
        <Stat label="Running assignments" value={assignments.data ? `${running} of ${assignments.data.items.length}` : "…"} />
        <Stat label="Open positions" value={positions.data ? pos.filter((p) => Number(p.qty) > 0).length : "…"} />
        <Stat label="Unrealized P&L" value={positions.data ? signed(unrealized) : "…"} tone={tone(unrealized)} />
        <Stat label="Realized P&L" value={positions.data ? signed(realized) : "…"} tone={tone(realized)} />
      </div>
      <div className="grid">
        <Card title="Markets">
          <Loader state={markets} empty={(d) => d.items.length === 0 && "No markets yet: the exchanges are starting."}>
            {(d) => (
              <table>
                <thead><tr><th>Market</th><th>Exchange</th><th className="num">Last price</th></tr></thead>
                <tbody>
                  {d.items.map((m) => {
                    const key = priceKey(m.exchange, m.symbol);
                    return (
                      <tr key={m.id}>
                        <td><Link to={`/markets/${m.id}`}>{m.symbol}</Link></td>
                        <td className="muted">{m.exchange}</td>
                        <td className="num price" data-testid={`price-${m.symbol}`}>{price(live.prices[key] ?? m.last_price)}<span className={`tick ${live.moves[key] ?? ""}`} aria-hidden>{live.moves[key] === "up" ? "▲" : live.moves[key] === "down" ? "▼" : ""}</span></td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            )}
          </Loader>
        </Card>
        <Card title="Your assignments" actions={<Link className="button" to="/assignments">Manage</Link>}>
          <Loader state={assignments} empty={(d) => d.items.length === 0 && <>Nothing running. <Link to="/strategies/new">Write a strategy</Link>, then assign it to a market.</>}>
            {(d) => (
              <table>
                <thead><tr><th>Strategy</th><th>Market</th><th>Last decision</th><th>State</th></tr></thead>
                <tbody>
                  {d.items.map((a) => (
                    <tr key={a.id}>
                      <td>{names.get(a.strategy_id) ?? `#${a.strategy_id}`}</td>
                      <td><Link to={`/markets/${a.market_id}?assignment=${a.id}`}>{marketName.get(a.market_id) ?? `#${a.market_id}`} · {a.timeframe}</Link></td>
                      <td><DecisionPill a={a} live={live} /></td>
                      <td>{a.enabled ? <span className="pill ok">running</span> : <span className="pill paused" title={a.paused_reason ?? ""}>paused</span>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Loader>
        </Card>
        <Card title="Positions and P&L" actions={pos.length > 0 &&
          <FlattenButton count={pos.filter((p) => Number(p.qty) > 0 && p.trader_id !== null).length} onDone={positions.reload} />}>
          <Loader state={positions} empty={(d) => d.length === 0 && "No positions yet: they appear with an assignment's first fill."}>
            {(d) => (
              <div className="scroll-x">
                <table>
                  <thead><tr><th>Market</th><th className="num">Qty</th><th className="num">Value</th><th className="num">Unrealized</th><th className="num">Realized</th><th /></tr></thead>
                  <tbody>
                    {d.map((p) => (
                      <tr key={p.assignment_id}>
                        <td>{p.symbol} <span className="muted">#{p.assignment_id}</span></td>
                        <td className="num">{Number(p.qty) > 0 ? fmt(p.qty, 6) : <span className="muted">flat</span>}</td>
                        <td className="num">{Number(p.qty) > 0 ? fmt(p.value) : "—"}</td>
                        <td className={`num ${tone(p.unrealized_pnl)}`}>{signed(p.unrealized_pnl)}</td>
                        <td className={`num ${tone(p.realized_pnl)}`}>{signed(p.realized_pnl)}</td>
                        <td className="actions">{p.trader_id !== null && <CloseButton assignmentId={p.assignment_id} qty={p.qty} symbol={p.symbol} onDone={positions.reload} />}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Loader>
        </Card>
        <Card title={`Open orders${open.length ? ` (${open.length})` : ""}`}>
          <Loader state={orders}>
            {() => <OpenOrders orders={open} label={(o) => {
              const mid = o.assignment_id ? marketOf.get(o.assignment_id) : undefined;
              return mid ? <Link to={`/markets/${mid}?assignment=${o.assignment_id}`}>{o.symbol} <span className="muted">#{o.assignment_id}</span></Link> : o.symbol;
            }} />}
          </Loader>
        </Card>
        <Card title="Recent orders" className="span-all">
          <Loader state={orders} empty={(d) => d.items.length === 0 && "No orders yet."}>
            {(d) => (
              <div className="scroll-x">
                <table>
                  <thead><tr><th>Placed</th><th>Market</th><th>Side</th><th>Type</th><th className="num">Amount</th><th className="num">Price</th><th>Status</th></tr></thead>
                  <tbody data-testid="recent-orders">
                    {d.items.slice(0, 10).map((o) => (
                      <tr key={o.id}>
                        <td className="muted nowrap"><When t={o.created_at} /></td>
                        <td>{o.symbol}</td>
                        <td className={o.side === "buy" ? "up" : "down"}>{o.side}</td>
                        <td><OrderKind o={o} /></td>
                        <td className="num">{fmt(o.amount, 6)}<SizeNote o={o} /></td>
                        <td className="num">{price(o.price)}</td>
                        <td><span className={`pill ${o.status}`} title={o.reason ?? ""}>{o.status}</span></td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Loader>
        </Card>
      </div>
    </>
  );
}
