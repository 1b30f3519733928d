// Run history: what the Runs, Compare and Walk-forward pages draw from the API's run documents.
import type { Schemas } from "./api/client";

export type Run = Schemas["RunOut"];
export type RunKind = Run["kind"];
export type CompareRow = Schemas["CompareRow"];

export const KIND_LABEL: Record<RunKind, string> = { backtest: "Backtest", study: "Optimisation", walkforward: "Walk-forward" };
export const SERIES_COLORS = ["#2c5bd6", "#c2553a", "#2f9e6e", "#8a4fd6", "#d69a2c", "#2ca6b8", "#b8437a", "#5b6b2c", "#6b7489", "#1d2433"];
export const MAX_COMPARE = 10;

/** What an optimisation (and a walk-forward's train windows) can optimise, with its label. */
export const OBJECTIVES: [string, string][] = [["sharpe", "Sharpe"], ["sortino", "Sortino"], ["return", "Return"], ["max_drawdown", "Max drawdown (lowest)"], ["profit_factor", "Profit factor"]];

/** The run's own page in the app. */
export function runPage(r: { kind: RunKind; id: number }): string {
  return r.kind === "backtest" ? `/backtests/${r.id}` : r.kind === "study" ? `/research/${r.id}` : `/research/walkforward/${r.id}`;
}

export interface Exports { csv: string; json: string; html: string }

/** The API's export addresses of a run (downloads: the session cookie goes with them). */
export function exportLinks(kind: RunKind, id: number): Exports {
  const base = `/api/runs/${kind}/${id}`;
  return { csv: `${base}/trades.csv`, json: `${base}/export.json`, html: `${base}/report.html` };
}

/** The compare page's address for these runs ("backtest:3", "study:2", ...). */
export function compareLink(refs: string[]): string {
  return `/research/compare?runs=${refs.map(encodeURIComponent).join(",")}`;
}

/** The runs a compare address names: well-formed, each once, at most MAX_COMPARE. */
export function parseRefs(search: string): string[] {
  const raw = new URLSearchParams(search).get("runs") ?? "";
  const out: string[] = [];
  for (const part of raw.split(",")) {
    const ref = part.trim();
    if (/^(backtest|study|walkforward):[1-9]\d{0,11}$/.test(ref) && !out.includes(ref)) out.push(ref);
  }
  return out.slice(0, MAX_COMPARE);
}

/** Select or unselect a run, keeping the order they were picked in. */
export function toggle(selected: string[], ref: string): string[] {
  return selected.includes(ref) ? selected.filter((r) => r !== ref) : [...selected, ref];
}

export interface LinePoint { time: number; value: number }

/** An equity curve ([time ms, equity, drawdown %]) as return % from its start (the run's cash, else its first
 *  point), in chart seconds: one point per second (the last), ascending, so runs of any cash share a scale. */
export function returnLine(equity: number[][] | null | undefined, cash?: unknown): LinePoint[] {
  if (!equity?.length) return [];
  const start = typeof cash === "number" && cash > 0 ? cash : equity[0][1];
  const bySecond = new Map<number, number>();
  for (const [t, eq] of equity) {
    if (!Number.isFinite(t) || !Number.isFinite(eq)) continue;
    bySecond.set(Math.floor(t / 1000), (eq / start - 1) * 100);
  }
  return [...bySecond.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
}

/** A run's name in legends and table heads: "Optimisation #3 · SMA v2". */
export function runLabel(r: Pick<Run, "kind" | "id" | "strategy" | "version">): string {
  return `${KIND_LABEL[r.kind]} #${r.id} · ${r.strategy} v${r.version}`;
}

const DIGITS: Record<string, number> = { sharpe: 3, sortino: 3, profit_factor: 3, wfe: 3, win_rate: 1, trade_count: 0, candles: 0 };

/** A headline metric as the tables show it. */
export function metricText(key: string, v: unknown): string {
  if (typeof v !== "number" || !Number.isFinite(v)) return "—";
  const d = DIGITS[key] ?? 2;
  const s = v.toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d });
  if (key === "return_pct") return `${v > 0 ? "+" : ""}${s} %`;
  if (key === "max_drawdown_pct" || key === "win_rate") return `${s} %`;
  return s;
}

/** What a run searched or fixed, in a line: its parameters, or a walk-forward's windows. */
export function settingsText(r: Run): string {
  const s = r.settings as Record<string, unknown>;
  const fee = typeof s.fee === "number" ? `fee ${+(s.fee * 100).toFixed(4)} %` : "";
  if (r.kind === "walkforward") {
    const windows = s.mode === "split" ? `split ${s.split}` : `${s.mode} ${s.train}/${s.test}`;
    return [windows, `${s.trials_per_window} trials per window`, `by ${(s.objectives as string[] | undefined)?.join(", ") ?? "?"}`, fee].filter(Boolean).join(" · ");
  }
  if (r.kind === "study") return [`${s.trials} trials`, `by ${(s.objectives as string[] | undefined)?.join(", ") ?? "?"}`, fee].filter(Boolean).join(" · ");
  return [fee, typeof s.lookback === "number" ? `lookback ${s.lookback}` : ""].filter(Boolean).join(" · ");
}

/** The parameters as name=value, comma-separated ("—" for none). */
export function paramsText(p: Record<string, unknown> | null | undefined): string {
  const entries = Object.entries(p ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(", ") : "—";
}

// -- walk-forward ------------------------------------------------------------------------------------------------
export interface WindowSpan { index: number; train: { from: string; to: string; candles: number }; test: { from: string; to: string; candles: number } }
export interface WalkForwardDoc {
  mode: string; objective: string; cash: number; windows: (WindowSpan & Record<string, unknown>)[];
  is_equity: number[][]; oos_equity: number[][]; wfe: number | null;
  oos_return_pct: number; oos_annualised_pct: number; is_annualised_pct: number;
}

export interface XY { x: number; y: number }

/** The chained in-sample and out-of-sample curves as return % against window progress: x is the window's number
 *  plus how far into its train (in sample) or test (out of sample) window the point is. Rolling train windows
 *  overlap in time, so the two are drawn side by side per window rather than on a time axis. */
export function progressSeries(d: Pick<WalkForwardDoc, "cash" | "windows" | "is_equity" | "oos_equity">): { inSample: XY[]; outOfSample: XY[] } {
  const cash = d.cash > 0 ? d.cash : 1;
  const spans = new Map(d.windows.map((w) => [w.index, { train: [Date.parse(w.train.from), Date.parse(w.train.to)], test: [Date.parse(w.test.from), Date.parse(w.test.to)] }]));
  const inSample: XY[] = [];
  for (const [win, t, eq] of d.is_equity) {
    const s = spans.get(win);
    if (!s) continue;
    const [a, b] = s.train;
    inSample.push({ x: win + (t - a) / (b - a || 1), y: (eq / cash - 1) * 100 });
  }
  const order = [...spans.entries()].sort((a, b) => a[0] - b[0]);
  const outOfSample: XY[] = [];
  for (const [t, eq] of d.oos_equity) {
    // the last window also takes a point at its very end
    const found = order.find(([, s], i) => t >= s.test[0] && (t < s.test[1] || i === order.length - 1));
    if (!found) continue;
    const [win, s] = found;
    outOfSample.push({ x: win + (t - s.test[0]) / (s.test[1] - s.test[0] || 1), y: (eq / cash - 1) * 100 });
  }
  return { inSample, outOfSample };
}

/** The walk-forward form's body fields for its mode: train and test lengths, or the split share. */
export function windowFields(mode: string, train: string, test: string, split: string): { train?: string; test?: string; split?: number } {
  if (mode === "split") return { split: Number(split) };
  return { train: train.trim(), test: test.trim() };
}

/** A window length as the API takes it: 30d, 12h, 90m, 2w. */
export function checkSpan(field: string, value: string): { field: string; message: string } | null {
  const m = /^\s*(\d+)\s*([mhdw])\s*$/.exec(value);
  return m && Number(m[1]) > 0 ? null : { field, message: "a length such as 30d, 12h, 90m or 2w" };
}
