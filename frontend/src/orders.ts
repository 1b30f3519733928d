// Order types and exit reasons as the pages show them, and which orders are still resting on the venue.
import type { Order } from "./api/client";

/** The order types that protect an open position (placed by core when an entry fills). */
export const PROTECTIVE_TYPES = ["stop", "take_profit", "trailing_stop"] as const;

const TYPE_LABELS: Record<string, string> = {
  market: "market", limit: "limit", stop: "stop", take_profit: "take-profit", trailing_stop: "trailing stop", quote: "quote",
};
const EXIT_LABELS: Record<string, string> = {
  signal: "signal", stop_loss: "stop-loss", take_profit: "take-profit", trailing_stop: "trailing stop", manual: "closed by you", end: "open at end", open: "open", unknown: "—",
};
/** Exit reasons are listed in this order in summaries. */
export const EXIT_ORDER = ["signal", "stop_loss", "take_profit", "trailing_stop", "manual", "end", "open", "unknown"];

export const orderTypeLabel = (type: string | null | undefined): string => TYPE_LABELS[type ?? "market"] ?? (type as string);
export const exitReasonLabel = (reason: string | null | undefined): string => (reason ? EXIT_LABELS[reason] ?? reason.replace(/_/g, " ") : "—");

/** The exit reason of an order worth showing: a filled sell's. */
export function exitReasonOf(o: Pick<Order, "side" | "status" | "exit_reason">): string | null {
  return o.side === "sell" && o.status === "filled" && o.exit_reason ? o.exit_reason : null;
}

/** An order that rests on the venue (or is being placed there): a protective exit, a limit entry or a
 *  market maker's quote (a post-only limit), not yet filled, cancelled or rejected. Market orders are never
 *  listed: they fill at once. */
export function isOpenOrder(o: Pick<Order, "status" | "type">): boolean {
  return (o.status === "open" || o.status === "pending") && !!o.type && o.type !== "market";
}

/** The open orders among `orders`: protective exits first, then limit entries, then quotes; each by assignment, newest first. */
export function openOrders<T extends Pick<Order, "status" | "type" | "id" | "assignment_id">>(orders: T[]): T[] {
  const rank = (o: T) => ((PROTECTIVE_TYPES as readonly string[]).includes(o.type) ? 0 : o.type === "quote" ? 2 : 1);
  return orders.filter(isOpenOrder).sort((a, b) => rank(a) - rank(b) || (a.assignment_id ?? 0) - (b.assignment_id ?? 0) || b.id - a.id);
}

export interface Level { label: "limit" | "stop" | "target" | "trail" | "bid" | "ask"; price: number }

/** The prices an order rests at: a limit entry's limit; a stop's trigger; a take-profit's target (and its
 *  stop leg, when the venue pairs them); a trailing stop's current level; a quote's price, as a bid or an ask. */
export function orderLevels(o: Pick<Order, "type" | "limit_price" | "stop_price"> & { side?: string; price?: string | null }): Level[] {
  const n = (x: string | null | undefined) => (x === null || x === undefined || x === "" ? NaN : Number(x));
  const lim = n(o.limit_price), stop = n(o.stop_price);
  const out: Level[] = [];
  if (o.type === "quote") {
    const at = Number.isFinite(lim) ? lim : n(o.price);
    if (Number.isFinite(at)) out.push({ label: o.side === "sell" ? "ask" : "bid", price: at });
  } else if (o.type === "take_profit") {
    if (Number.isFinite(lim)) out.push({ label: "target", price: lim });
    if (Number.isFinite(stop)) out.push({ label: "stop", price: stop });
  } else if (o.type === "trailing_stop") {
    if (Number.isFinite(stop)) out.push({ label: "trail", price: stop });
  } else {
    if (Number.isFinite(lim)) out.push({ label: "limit", price: lim });
    if (Number.isFinite(stop)) out.push({ label: "stop", price: stop });
  }
  return out;
}
