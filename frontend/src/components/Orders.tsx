import type { Order } from "../api/client";
import { exitReasonLabel, exitReasonOf, orderLevels, orderTypeLabel } from "../orders";
import { Empty, fmt, price, time } from "./ui";

/** Why a position was closed, as a small coloured pill (stop-loss red, take-profit green, …). */
export function ExitPill({ reason }: { reason: string | null | undefined }) {
  if (!reason) return null;
  return <span className={`pill exit ${reason}`} data-testid="exit-reason">{exitReasonLabel(reason)}</span>;
}

const QUOTE_TITLE = "A post-only limit order kept by a market-making (tick) strategy";

/** An order's type ("market", "stop", "take-profit", …) and, for a filled sell, why it closed the position. */
export function OrderKind({ o }: { o: Order }) {
  const why = exitReasonOf(o);
  return (
    <span className="nowrap">
      <span className="muted" data-testid="order-type" title={o.type === "quote" ? QUOTE_TITLE : undefined}>{orderTypeLabel(o.type)}</span>
      {why && <> <ExitPill reason={why} /></>}
    </span>
  );
}

/** Under an order's amount: why a buy is smaller than its decision asked (the account's free balance, a risk
 *  limit), or why one was refused. */
export function SizeNote({ o }: { o: Pick<Order, "size_note" | "status" | "reason"> }) {
  if (o.size_note) return <div className="size-note" data-testid="size-note" title={o.size_note}>{o.size_note}</div>;
  if (o.status === "rejected" && o.reason) return <div className="size-note" data-testid="rejected-reason" title={o.reason}>{o.reason}</div>;
  return null;
}

/** The prices an open order rests at ("stop 95.20", "target 101.00"). */
export function Levels({ o }: { o: Order }) {
  const lv = orderLevels(o);
  if (!lv.length) return <span className="muted">—</span>;
  return <>{lv.map((l) => <div key={l.label} className="nowrap"><span className="muted small">{l.label}</span> {price(l.price)}</div>)}</>;
}

/** Protective exits and resting limit entries that are still open, with the prices they wait for.
 *  `label` names the assignment or market of a row where the list mixes several. */
export function OpenOrders({ orders, label, empty = "No open orders: protective exits, limit entries and quotes appear here while they rest on the exchange." }:
  { orders: Order[]; label?: (o: Order) => React.ReactNode; empty?: React.ReactNode }) {
  if (!orders.length) return <Empty>{empty}</Empty>;
  return (
    <div className="scroll-x">
      <table>
        <thead><tr>{label && <th>Market</th>}<th>Type</th><th>Side</th><th className="num">Amount</th><th className="num">At</th><th>Status</th></tr></thead>
        <tbody data-testid="open-orders">
          {orders.map((o) => (
            <tr key={o.id}>
              {label && <td className="nowrap">{label(o)}</td>}
              <td className="nowrap" title={`placed ${time(o.created_at)}${o.type === "quote" ? ` · ${QUOTE_TITLE.toLowerCase()}` : ""}`} data-testid="open-order-type">{orderTypeLabel(o.type)}</td>
              <td className={o.side === "buy" ? "up" : "down"}>{o.side}</td>
              <td className="num">{fmt(o.amount, 6)}</td>
              <td className="num"><Levels o={o} /></td>
              <td><span className={`pill ${o.status}`} title={o.reason ?? ""}>{o.status}</span></td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
