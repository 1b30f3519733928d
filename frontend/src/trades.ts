// The trades view: what GET /api/trades answers, made ready for the page.
import type { Trades, Trip } from "./api/client";
import type { HoldPoint } from "./components/CandleChart";

export type TradesOf = { trader_id: number } | { assignment_id: number };

/** Whose trades the address asks for: ?trader=ID or ?assignment=ID (an assignment wins); null for neither. */
export function tradesOf(search: string): TradesOf | null {
  const q = new URLSearchParams(search);
  const a = Number(q.get("assignment"));
  if (Number.isInteger(a) && a > 0) return { assignment_id: a };
  const t = Number(q.get("trader"));
  if (Number.isInteger(t) && t > 0) return { trader_id: t };
  return null;
}

/** The address of a choice of the page's picker ("t12", "a7"), or of the view. */
export function tradesPath(of: TradesOf): string {
  return "trader_id" in of ? `/trades?trader=${of.trader_id}` : `/trades?assignment=${of.assignment_id}`;
}

/** Where a round trip is seen on its market's chart: the market page, on the assignment, moved to the entry. */
export function tripLink(t: Pick<Trip, "market_id" | "assignment_id" | "entry_time">): string | null {
  if (t.market_id === null || t.market_id === undefined) return null;
  return `/markets/${t.market_id}?${t.assignment_id ? `assignment=${t.assignment_id}&` : ""}at=${t.entry_time}`;
}

/** The equity curve in chart units (seconds), one point per second (the last of it), sorted. */
export function equityPoints(raw: Trades["equity"]): HoldPoint[] {
  const by = new Map<number, number>();
  for (const p of raw) {
    const [t, v] = p;
    if (typeof t === "number" && typeof v === "number" && Number.isFinite(v)) by.set(Math.floor(t / 1000), v);
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
}

export interface DayBar { day: string; pnl: number; fees: number; fills: number; height: number; up: boolean }

/** The last ``days`` days of realized profit as bars: height in percent of the largest move either way. */
export function dailyBars(daily: Trades["daily"], days = 60): DayBar[] {
  const rows = daily.slice(-days).map((d) => ({ day: d.day, pnl: Number(d.pnl), fees: Number(d.fees), fills: d.fills }));
  const most = Math.max(0, ...rows.map((r) => Math.abs(r.pnl)));
  return rows.map((r) => ({ ...r, up: r.pnl >= 0, height: most > 0 ? Math.max(2, Math.round((Math.abs(r.pnl) / most) * 100)) : 2 }));
}

/** Why a round trip ended, for people. */
export function exitLabel(t: Pick<Trip, "exit_time" | "exit_reason">): string {
  if (t.exit_time === null || t.exit_time === undefined) return "open";
  return t.exit_reason === "reset" ? "account reset" : t.exit_reason ?? "—";
}
