// Form input <-> API values, and the checks worth making before a round trip.
// The server stays the authority: these only catch what a person can fix at once, with the same wording.
import { ApiError, type FieldError, type Schemas } from "./api/client";

export type ParamValue = number | string | boolean;
export type Params = Record<string, ParamValue>;

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parse "fast=10, slow=30" (commas or new lines) into parameters; numbers and booleans are typed. */
export function parseParams(text: string): Params {
  const out: Params = {};
  for (const raw of text.split(/[\n,]/)) {
    const part = raw.trim();
    if (!part) continue;
    const eq = part.indexOf("=");
    if (eq < 0) throw new FieldErrors([{ field: "params", message: `write parameters as name=value (got "${part}")` }]);
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (!IDENT.test(k) || k.length > 50) throw new FieldErrors([{ field: "params", message: `"${k}" is not a parameter name (letters, digits and _, not starting with a digit)` }]);
    if (k in out) throw new FieldErrors([{ field: "params", message: `"${k}" is given twice` }]);
    if (SWEEP.test(v)) throw new FieldErrors([{ field: "params", message: `${k}=${v}: one value per parameter (a range is for a sweep: tradewind sweep, or Research)` }]);
    if (NUMBER.test(v) && !Number.isFinite(Number(v))) throw new FieldErrors([{ field: "params", message: `${k}=${v} is not a finite number` }]);
    out[k] = v === "true" ? true : v === "false" ? false : v !== "" && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const SWEEP = /^-?[\d.]+\s*\.\.\s*-?[\d.]+(\s*:\s*[\d.]+)?$/;

/** A number field's text when the browser could not read what was typed as a number. */
export const BAD_NUMBER = "not a number";

/** A parameter a strategy declares (`params = {fast = {type = "int", min = 5, max = 50, default = 10}}`). */
export type ParamDecl = Schemas["ParamDeclOut"];
type Choice = NonNullable<ParamDecl["choices"]>[number];

/** A value as its declared field holds it: a number's or text's digits, "true"/"false" for a checkbox, and a
 *  choice as JSON (so that 1, "1" and true stay apart). */
export function paramText(d: ParamDecl, v: unknown): string {
  if (v === undefined || v === null) return "";
  if (d.type === "choice") return JSON.stringify(v);
  return String(v);
}

/** The field texts of a declaration for saved (or default) parameters: each declared one's value, else its
 *  default, else empty. */
export function paramTexts(decl: ParamDecl[], values: Record<string, unknown> | null | undefined): Record<string, string> {
  return Object.fromEntries(decl.map((d) => [d.name, paramText(d, values && d.name in values ? values[d.name] : d.default)]));
}

/** The declared fields as POST/PATCH want them: typed, and empty ones left out (the strategy's default holds).
 *  Only what cannot be sent is caught here (text in a number field); ranges and choices are the server's check,
 *  against the same declaration, and its errors name the field (params.fast). */
export function declaredParams(decl: ParamDecl[], texts: Record<string, string>): Params {
  const out: Params = {};
  const errors: FieldError[] = [];
  for (const d of decl) {
    const t = (texts[d.name] ?? paramText(d, d.default)).trim();
    if (d.type === "bool") { out[d.name] = t === "true"; continue; }
    if (!t) continue;
    if (d.type === "choice") { out[d.name] = JSON.parse(t) as Choice; continue; }
    const n = Number(t);
    if (!NUMBER.test(t) || !Number.isFinite(n)) errors.push({ field: `params.${d.name}`, message: d.type === "int" ? "enter a whole number" : "enter a number" });
    else out[d.name] = n;
  }
  if (errors.length) throw new FieldErrors(errors);
  return out;
}

/** A declared parameter's range and default, for the hint under its field ("5 to 50 · default 10"). */
export function paramHint(d: ParamDecl): string {
  const parts: string[] = [];
  if (d.min !== null && d.min !== undefined && d.max !== null && d.max !== undefined) parts.push(`${d.min} to ${d.max}${d.step ? ` by ${d.step}` : ""}`);
  if (d.default !== null && d.default !== undefined) parts.push(`default ${d.default}`);
  return [d.description, parts.join(" · ")].filter(Boolean).join(" — ");
}

/** The inverse of parseParams, for showing saved parameters in the same text field. */
export function formatParams(params: Record<string, unknown> | null | undefined): string {
  return Object.entries(params ?? {}).map(([k, v]) => `${k}=${v}`).join(", ");
}

/** An amount of money as the API wants it: a decimal string, > 0, at most 12 decimal places. */
export function checkAmount(field: string, text: string, { optional = false } = {}): FieldError | null {
  const t = text.trim();
  if (!t) return optional ? null : { field, message: "enter an amount" };
  if (!/^\d+(\.\d+)?$/.test(t)) return { field, message: "enter a positive number, like 1000 or 0.5" };
  if (Number(t) <= 0) return { field, message: "must be greater than 0" };
  if ((t.split(".")[1] ?? "").length > 12) return { field, message: "at most 12 decimal places" };
  return null;
}

/** A percentage from 0 (included) to `max` (excluded), like a fee. */
export function checkPercent(field: string, text: string, max = 100): FieldError | null {
  const t = text.trim();
  if (!/^\d+(\.\d+)?$/.test(t)) return { field, message: "enter a percentage, like 0.1" };
  if (Number(t) >= max) return { field, message: `must be under ${max} %` };
  return null;
}

/** The least time between two evaluations of a tick assignment, as the API bounds it (ms). */
export const MIN_INTERVAL_MS = 100;
export const MAX_INTERVAL_MS = 3_600_000;

/** A whole number of milliseconds within the API's bounds. */
export function checkInterval(field: string, text: string): FieldError | null {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return { field, message: "enter a whole number of milliseconds, like 1000" };
  const n = Number(t);
  if (n < MIN_INTERVAL_MS || n > MAX_INTERVAL_MS) return { field, message: `must be from ${MIN_INTERVAL_MS} to ${MAX_INTERVAL_MS.toLocaleString("en-US")} ms` };
  return null;
}

export type Trigger = "candle" | "tick";
export interface TriggerForm { trigger: string; min_interval_ms: string; max_position: string }

/** The trigger fields' checks: the interval and the max position count only for a tick assignment. */
export function checkTrigger(f: TriggerForm): (FieldError | null)[] {
  if (f.trigger !== "tick") return [f.trigger === "candle" ? null : { field: "trigger", message: "choose candle close or tick" }];
  return [checkInterval("min_interval_ms", f.min_interval_ms), checkAmount("max_position", f.max_position, { optional: true })];
}

/** The trigger fields as the API wants them. A candle assignment sends its trigger alone (its saved interval and
 *  limit stay as they were); a tick one its interval, and its max position or null for none. */
export function triggerBody(f: TriggerForm): { trigger: Trigger; min_interval_ms?: number; max_position?: string | null } {
  if (f.trigger !== "tick") return { trigger: "candle" };
  const max = f.max_position.trim();
  return { trigger: "tick", min_interval_ms: Number(f.min_interval_ms.trim()), max_position: max ? max : null };
}

/** The most a backtest's synthetic spread may be, in basis points (as the API bounds it). */
export const MAX_SPREAD_BPS = 1000;

/** A spread in basis points: above 0, at most MAX_SPREAD_BPS. */
export function checkBps(field: string, text: string, { optional = false } = {}): FieldError | null {
  const t = text.trim();
  if (!t) return optional ? null : { field, message: "enter a spread in basis points, like 2" };
  if (!/^\d+(\.\d+)?$/.test(t) || Number(t) <= 0) return { field, message: "enter a number of basis points above 0, like 2" };
  if (Number(t) > MAX_SPREAD_BPS) return { field, message: `at most ${MAX_SPREAD_BPS.toLocaleString("en-US")} bps` };
  return null;
}

/** A backtest's trigger ("": the strategy decides) and quoting fields, as the form holds them. */
export interface QuotingForm { trigger: string; spread_bps: string; max_position: string; min_interval_ms: string }

/** Whether the run quotes: the trigger tick, or no trigger and a strategy that quotes by default. */
export function runQuotes(f: Pick<QuotingForm, "trigger">, quotesByDefault: boolean): boolean {
  return f.trigger === "tick" || (f.trigger === "" && quotesByDefault);
}

/** The checks of a backtest's trigger and quoting fields; the quoting fields count only for a run that quotes
 *  (each is optional: empty, the server's default). */
export function checkQuoting(f: QuotingForm, quotes: boolean): (FieldError | null)[] {
  if (!["", "candle", "tick"].includes(f.trigger)) return [{ field: "trigger", message: "choose candle close or tick" }];
  if (!quotes) return [];
  return [checkBps("spread_bps", f.spread_bps, { optional: true }), checkAmount("max_position", f.max_position, { optional: true }),
    f.min_interval_ms.trim() ? checkInterval("min_interval_ms", f.min_interval_ms) : null];
}

/** The trigger and the quoting fields set, as POST /api/backtests wants them; none of the quoting fields for a
 *  run that does not quote (the API refuses them with the trigger candle). */
export function quotingBody(f: QuotingForm, quotes: boolean): { trigger?: Trigger; spread_bps?: number; max_position?: number; min_interval_ms?: number } {
  const out: { trigger?: Trigger; spread_bps?: number; max_position?: number; min_interval_ms?: number } = {};
  if (f.trigger === "candle" || f.trigger === "tick") out.trigger = f.trigger;
  if (!quotes) return out;
  const set = (k: "spread_bps" | "max_position" | "min_interval_ms") => { const t = f[k].trim(); if (t) out[k] = Number(t); };
  set("spread_bps");
  set("max_position");
  set("min_interval_ms");
  return out;
}

/** A date field's value `offset` days from today (UTC): a run form's default range. */
export const day = (offset: number): string => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

/** The fields every run form (a backtest, an optimisation, a walk-forward) starts with, as the form holds them:
 *  ids as text ("" for none chosen), dates as the date inputs give them ("" for open-ended). */
export interface RunForm { strategy_id: string; market_id: string; timeframe: string; from: string; to: string }
export const RUN_FIELDS = ["strategy_id", "market_id", "timeframe", "from", "to"];

/** The run fields' checks: a strategy and a market chosen, and an end not before the start. */
export function checkRun(f: RunForm): (FieldError | null)[] {
  return [
    f.strategy_id ? null : { field: "strategy_id", message: "choose a strategy" },
    f.market_id ? null : { field: "market_id", message: "choose a market" },
    f.to && f.from && f.to < f.from ? { field: "to", message: "must be after the start" } : null,
  ];
}

/** The run fields as the API wants them: the range from the first day's start to the last day's end (UTC). */
export function runBody(f: RunForm): { strategy_id: number; market_id: number; timeframe: string; from?: string; to?: string } {
  return {
    strategy_id: Number(f.strategy_id), market_id: Number(f.market_id), timeframe: f.timeframe,
    ...(f.from ? { from: `${f.from}T00:00:00Z` } : {}), ...(f.to ? { to: `${f.to}T23:59:59Z` } : {}),
  };
}

/** The settings of a run that searches the strategy's parameters (an optimisation, a walk-forward): the
 *  parameters held fixed ("size=0.5"), the fee in percent and the lookback. */
export interface SearchForm { params: string; fee: string; lookback: string }
export const SEARCH_FIELDS = ["params", "fee", "lookback"];

/** Those settings as the API wants them (the fee as a fraction); a parameter that does not read is thrown. */
export function searchBody(f: SearchForm): { params: Params; fee: number; lookback: number } {
  return { params: parseParams(f.params), fee: Number(f.fee) / 100, lookback: Number(f.lookback) };
}

/** Sign-up checks the server would make anyway, caught before the request. */
export function checkCredentials(email: string, password: string, registering: boolean): FieldError[] {
  const errors: FieldError[] = [];
  if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email.trim())) errors.push({ field: "email", message: "enter an email address" });
  if (registering && password.length < 10) errors.push({ field: "password", message: "use at least 10 characters" });
  if (!password) errors.push({ field: "password", message: "enter your password" });
  return errors;
}

/** Field errors found before any request, thrown and shown like the API's own. */
export class FieldErrors extends ApiError {
  constructor(errors: FieldError[]) {
    super(0, errors.map((e) => `${e.field}: ${e.message}`).join("; "), errors);
  }
}

/** Throw the collected errors, if any (null entries are checks that passed). */
export function assertValid(errors: (FieldError | null)[]): void {
  const found = errors.filter((e): e is FieldError => e !== null);
  if (found.length) throw new FieldErrors(found);
}

/** Any thrown value as an ApiError, so that forms have one thing to show. */
export function asApiError(x: unknown): ApiError {
  if (x instanceof ApiError) return x;
  return new ApiError(0, x instanceof Error ? x.message : String(x));
}
