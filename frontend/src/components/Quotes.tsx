import { useEffect, useState } from "react";
import type { Assignment, Market, Quote, Quotes } from "../api/client";
import type { Subscribe } from "../App";
import { bookOf, compact, quoteStats, spreadText, triggerLabel } from "../quotes";
import type { TickEvent } from "../stream";
import { CLOCK_NOTE, formatTime } from "../time";
import { Alert, Card, Empty, Loading, fmt, price, signed, tone } from "./ui";


/** The market's best bid and ask and the spread, live from its ticks (a few a second at most). Its own
 *  component so that ticks redraw these figures only, not the chart and the tables. */
export function TopOfBook({ market, marketId, subscribe }: { market: Market | null; marketId: number; subscribe: Subscribe }) {
  const [last, setLast] = useState<{ tick: TickEvent; at: number } | null>(null);
  useEffect(() => subscribe((ev) => {
    if (ev.type !== "tick") return;
    const mine = ev.market_id === marketId || (ev.market_id === null && !!market && ev.exchange === market.exchange && ev.symbol === market.symbol);
    if (mine) setLast({ tick: ev, at: Date.now() });
  }), [subscribe, marketId, market]);

  if (!last) {
    return (
      <div className="stats book" data-testid="book">
        <div className="stat"><span>Bid</span><b className="muted">—</b></div>
        <div className="stat"><span>Ask</span><b className="muted">—</b></div>
        <div className="stat"><span>Spread</span><b className="muted small-value" data-testid="no-ticks"
          title="The bid and ask appear here as the exchange streams this market's book">no ticks yet</b></div>
      </div>
    );
  }
  const { tick } = last;
  const b = bookOf(tick);
  const size = (x: number) => (x > 0 ? <small className="muted">size {compact(x, 8)}</small> : null);
  return (
    <div className="stats book" data-testid="book">
      <div className="stat"><span>Bid</span><b className="up" data-testid="bid">{b.bid === null ? "—" : price(b.bid)}</b>{size(tick.bid_size)}</div>
      <div className="stat"><span>Ask</span><b className="down" data-testid="ask">{b.ask === null ? "—" : price(b.ask)}</b>{size(tick.ask_size)}</div>
      <div className="stat"><span>Spread</span><b data-testid="spread" className={b.spread !== null && b.spread < 0 ? "down" : ""}>{spreadText(b)}</b>
        <small className="muted" data-testid="tick-time" title={tick.time > 0 ? `The last tick's time: ${CLOCK_NOTE.market}` : `When the last tick arrived: ${CLOCK_NOTE.wall}`}>
          as of {formatTime(tick.time > 0 ? tick.time : last.at, { seconds: true })}{tick.last > 0 && <> · last trade {price(tick.last)}</>}</small></div>
    </div>
  );
}

/** One quoting (tick) assignment of the market: its resting quotes, inventory, realized spread P&L and fills. */
export function QuotePanel({ a, data, error, selected, onSelect }:
  { a: Assignment; data: Quotes | null; error: string | null; selected: boolean; onSelect: () => void }) {
  const title = <>Quotes · assignment #{a.id}</>;
  const actions = (
    <span className="muted small">
      {triggerLabel(a)}{!a.enabled && <> · <span className="pill paused">paused</span></>}
      {!selected && <> · <button className="link" onClick={onSelect}>decisions &amp; fills</button></>}
    </span>
  );
  if (!data) return <Card title={title} actions={actions}>{error ? <Alert>{error}</Alert> : <Loading />}</Card>;
  const s = quoteStats(data);
  const rows: Quote[] = [...s.asks].reverse().concat(s.bids); // as a book: highest ask on top, best bid under the best ask
  return (
    <Card title={title} actions={actions}>
      <div data-testid={`quotes-${a.id}`}>
        {error && <Alert>{error}</Alert>}
        <div className="mini-stats">
          <div><span>Inventory</span><b data-testid="inventory">{fmt(s.inventory, 8)}{s.max !== null && <span className="muted"> / {fmt(s.max, 8)} max</span>}</b>
            {s.used !== null && <div className="meter" title={`${Math.round(s.used * 100)} % of the max position`}><i className={s.used >= 1 ? "full" : ""} style={{ width: `${Math.min(100, s.used * 100)}%` }} /></div>}
            {s.max === null && <small className="muted">no max position</small>}</div>
          <div><span title="Realized P&L of the quotes' round trips, fees included">Spread P&amp;L</span><b className={tone(s.pnl)} data-testid="spread-pnl">{signed(s.pnl)}</b></div>
          <div><span>Fills</span><b data-testid="fills-per-side"><span className="up">{s.buys} buy{s.buys === 1 ? "" : "s"}</span> · <span className="down">{s.sells} sell{s.sells === 1 ? "" : "s"}</span></b></div>
          <div><span title="Filled quotes ÷ quotes that ended (filled or cancelled)">Fill rate</span><b data-testid="fill-rate">{s.fillRate}</b>
            <small className="muted">{s.filled} of {s.placed} placed</small></div>
        </div>
        {rows.length === 0 ? <Empty>{a.trader_id === null ? "This assignment has no account: it places no quotes." : a.enabled ? "No quotes resting right now." : "Paused: no quotes resting."}</Empty> : (
          <table>
            <thead><tr><th>Side</th><th className="num">Price</th><th className="num">Amount</th><th>Status</th></tr></thead>
            <tbody data-testid="resting-quotes">
              {rows.map((q) => (
                <tr key={q.client_order_id}>
                  <td className={q.side === "buy" ? "up" : "down"}>{q.side === "buy" ? "bid" : "ask"}</td>
                  <td className="num">{price(q.price)}</td><td className="num">{fmt(q.amount, 8)}</td>
                  <td><span className={`pill ${q.status}`}>{q.status}</span></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </Card>
  );
}
