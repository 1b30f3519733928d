// Market making as the pages show it: the top of the book from ticks, a quoting assignment's resting quotes
// (as chart lines) and how its quotes have done.
import type { Assignment, Quote, Quotes } from "./api/client";
import type { PriceLine } from "./chartdata";

/** The colours of quote lines: bids green, asks red (solid and thin, where a position's stop and target are dashed). */
export const QUOTE_COLORS = { buy: "#2f9e6e", sell: "#c2553a" } as const;

/** A tick-driven assignment: on_tick() on the market's book, keeping quotes on both sides. */
export const isTickAssignment = (a: Pick<Assignment, "trigger">): boolean => a.trigger === "tick";

/** How an assignment is triggered, for lists: "tick · 1000 ms"; null for the usual candle close. */
export function triggerLabel(a: Pick<Assignment, "trigger" | "min_interval_ms">): string | null {
  return isTickAssignment(a) ? `tick · ${a.min_interval_ms ?? 1000} ms` : null;
}

export interface Book {
  bid: number | null; // null: that side of the book is empty
  ask: number | null;
  mid: number | null;
  spread: number | null; // ask - bid, in price
  bps: number | null; // the spread in basis points of the mid
}

/** The best bid and ask of a tick, their mid and the spread (a side given as 0 or less is empty). */
export function bookOf(t: { bid: number; ask: number }): Book {
  const bid = Number.isFinite(t.bid) && t.bid > 0 ? t.bid : null;
  const ask = Number.isFinite(t.ask) && t.ask > 0 ? t.ask : null;
  if (bid === null || ask === null) return { bid, ask, mid: null, spread: null, bps: null };
  const mid = (bid + ask) / 2;
  const spread = ask - bid;
  return { bid, ask, mid, spread, bps: (spread / mid) * 10_000 };
}

/** Basis points with the precision their size deserves: "0.17 bps", "3.3 bps", "125 bps". */
export function formatBps(bps: number | null | undefined): string {
  if (bps === null || bps === undefined || !Number.isFinite(bps)) return "—";
  const a = Math.abs(bps);
  const digits = a === 0 ? 0 : a < 1 ? 2 : a < 100 ? 1 : 0;
  return `${bps.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })} bps`;
}

/** A number without trailing zeros, grouped: 60,010; 60,010.5; 0.0125 (for line labels, where room is short). */
export function compact(n: number | string, maxDigits?: number): string {
  const v = typeof n === "string" ? Number(n) : n;
  if (!Number.isFinite(v)) return "—";
  const digits = maxDigits ?? (Math.abs(v) >= 1000 ? 2 : Math.abs(v) >= 1 ? 4 : 8);
  return v.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** The spread as the page says it: "2.5 · 0.42 bps"; "one side empty"; "crossed by 1 · -1.7 bps". */
export function spreadText(b: Book): string {
  if (b.spread === null) return b.bid === null && b.ask === null ? "book empty" : "one side empty";
  const s = `${compact(Math.abs(b.spread))} · ${formatBps(b.bps)}`;
  return b.spread < 0 ? `crossed by ${s}` : s;
}

/** A quote's side as the book names it. */
export const quoteSide = (side: string): "bid" | "ask" => (side === "buy" ? "bid" : "ask");

/** A quote line's label: "bid quote 0.01 @ 60,010" (with the assignment, "… #12", where several quote the market). */
export function quoteLabel(q: Pick<Quote, "side" | "price" | "amount">, assignmentId?: number): string {
  return `${quoteSide(q.side)} quote ${compact(q.amount, 8)} @ ${compact(q.price)}${assignmentId ? ` #${assignmentId}` : ""}`;
}

/** The resting quotes of the given books as chart lines, bids green and asks red, highest price first
 *  within each assignment; the assignment is named in the label only when more than one quotes here. */
export function quoteLines(books: Pick<Quotes, "assignment_id" | "quotes">[]): PriceLine[] {
  const quoting = books.filter((b) => b.quotes.length > 0);
  const several = quoting.length > 1;
  const out: PriceLine[] = [];
  for (const b of [...quoting].sort((x, y) => x.assignment_id - y.assignment_id)) {
    const rows = b.quotes
      .map((q) => ({ q, price: Number(q.price) }))
      .filter((r) => Number.isFinite(r.price) && r.price > 0)
      .sort((x, y) => y.price - x.price);
    for (const { q, price } of rows) {
      const kind = quoteSide(q.side);
      out.push({ key: `quote-${b.assignment_id}-${q.client_order_id}`, price, color: q.side === "buy" ? QUOTE_COLORS.buy : QUOTE_COLORS.sell,
        title: quoteLabel(q, several ? b.assignment_id : undefined), kind, assignment_id: b.assignment_id, watched: false, style: "solid" });
    }
  }
  return out;
}

export interface QuoteStats {
  inventory: number;
  max: number | null; // the inventory limit (base), null: none but the cash
  used: number | null; // inventory as a share of the limit, 0..1 (more when over it)
  pnl: number;
  placed: number;
  filled: number;
  buys: number;
  sells: number;
  fillRate: string; // "40 %", or "—" before any quote ended
  bids: Quote[]; // resting, best (highest) first
  asks: Quote[]; // resting, best (lowest) first
}

/** The numbers of a quoting assignment's panel. */
export function quoteStats(q: Quotes): QuoteStats {
  const n = (x: string | number | null | undefined) => (x === null || x === undefined || x === "" ? NaN : Number(x));
  const inventory = n(q.inventory);
  const max = n(q.max_position);
  const inv = Number.isFinite(inventory) ? inventory : 0;
  const limit = Number.isFinite(max) && max > 0 ? max : null;
  const byPrice = (side: string, dir: 1 | -1) => q.quotes.filter((x) => x.side === side).sort((a, b) => dir * (n(a.price) - n(b.price)));
  const pnl = n(q.realized_pnl);
  return {
    inventory: inv, max: limit, used: limit === null ? null : Math.abs(inv) / limit,
    pnl: Number.isFinite(pnl) ? pnl : 0, placed: q.placed, filled: q.filled, buys: q.buys_filled, sells: q.sells_filled,
    fillRate: formatRate(q.fill_rate), bids: byPrice("buy", -1), asks: byPrice("sell", 1),
  };
}

/** A fill rate (0..1) as a percentage: "40 %", "2.5 %", "—" when unknown. */
export function formatRate(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return "—";
  const pct = rate * 100;
  return `${pct.toLocaleString("en-US", { maximumFractionDigits: pct > 0 && pct < 10 ? 1 : 0 })} %`;
}

/** Collect assignment ids and call `run` once with all of them `ms` after the first (a burst of order and
 *  fill events becomes one refresh per assignment, and a steady stream of them one refresh every `ms`). */
export function batcher(run: (ids: number[]) => void, ms: number): { add: (id: number) => void; cancel: () => void } {
  let pending = new Set<number>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  return {
    add(id: number) {
      pending.add(id);
      if (timer !== undefined) return;
      timer = setTimeout(() => {
        const ids = [...pending].sort((a, b) => a - b);
        pending = new Set();
        timer = undefined;
        run(ids);
      }, ms);
    },
    cancel() {
      clearTimeout(timer);
      timer = undefined;
      pending = new Set();
    },
  };
}
