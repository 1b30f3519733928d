// Every time the app shows goes through formatTime: UTC, with the year, labelled "UTC". One clock for every
// page, whatever the browser's time zone; the candle chart's axis is in UTC too.

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** "2025-06-14 09:31 UTC" (with `seconds`: "2025-06-14 09:31:05 UTC"); epoch milliseconds or ISO 8601. */
export function formatTime(t: number | string | Date, { seconds = false }: { seconds?: boolean } = {}): string {
  const d = toDate(t);
  if (d === null) return "—";
  const day = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const clock = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}${seconds ? `:${pad(d.getUTCSeconds())}` : ""}`;
  return `${day} ${clock} UTC`;
}

/** The moment `t` names (null when it names none). */
export function toDate(t: number | string | Date): Date | null {
  const d = t instanceof Date ? t : new Date(typeof t === "string" ? isoAsUtc(t) : t);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** An ISO time without a zone ("2025-06-14T09:31:00") is UTC here; JavaScript would read it as local time. */
function isoAsUtc(s: string): string {
  return /T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(s) ? `${s}Z` : s;
}

/** Which clock a time was read from. The market's clock is the exchange's: the simulator's runs `sim_speed`
 * times faster than the wall clock, so its candles can be hours or days ahead of when they were recorded. */
export type Clock = "wall" | "market";

export const CLOCK_NOTE: Record<Clock, string> = {
  wall: "When tradewind recorded it (the wall clock, UTC)",
  market: "The candle's time on the exchange's clock (UTC); the simulated exchange's clock can run ahead of the wall clock",
};
