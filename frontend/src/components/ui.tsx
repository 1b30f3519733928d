import type { ReactNode } from "react";
import type { Loaded } from "../hooks";
import { CLOCK_NOTE, formatTime, toDate, type Clock } from "../time";

export function Field({ label, error, hint, children }: { label: string; error?: string; hint?: ReactNode; children: ReactNode }) {
  return (
    <label className={`field${error ? " has-error" : ""}`}>
      <span>{label}</span>
      {children}
      {error ? <small className="field-error" role="alert">{error}</small> : hint ? <small className="hint">{hint}</small> : null}
    </label>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return <div className="loading" aria-busy="true"><span className="spinner" />{label}</div>;
}

export function Alert({ children, onRetry }: { children: ReactNode; onRetry?: () => void }) {
  return (
    <div className="alert" role="alert">
      {children}
      {onRetry && <button type="button" className="link" onClick={onRetry}>Try again</button>}
    </div>
  );
}

/** Loading, error (with a retry), empty, or the content: the four states every list has. */
export function Loader<T>({ state, empty, children }: { state: Loaded<T>; empty?: (d: T) => ReactNode | false; children: (d: T) => ReactNode }) {
  if (state.error && state.data === null) return <Alert onRetry={state.reload}>{state.error.message}</Alert>;
  if (state.data === null) return <Loading />;
  const e = empty?.(state.data);
  return <>{e ? <Empty>{e}</Empty> : children(state.data)}</>;
}

export function Card({ title, actions, children, className }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <section className={`card${className ? ` ${className}` : ""}`}>
      {(title || actions) && <header className="card-head"><h2>{title}</h2><div className="card-actions">{actions}</div></header>}
      {children}
    </section>
  );
}

export function PageHead({ title, children }: { title: string; children?: ReactNode }) {
  return <div className="page-head"><h1>{title}</h1><div className="page-actions">{children}</div></div>;
}

export function Stat({ label, value, tone }: { label: string; value: ReactNode; tone?: "up" | "down" | "" }) {
  return <div className="stat"><span>{label}</span><b className={tone ?? ""}>{value}</b></div>;
}

/** A run's status as a pill: done, error, or on its way (queued, running, interrupted). */
export function RunStatus({ status, testid }: { status: string; testid?: string }) {
  const cls = status === "done" ? "ok" : status === "error" ? "error" : "pending";
  return <span className={`pill ${cls}`} data-testid={testid}>{status}</span>;
}

export function fmt(n: number | string | null | undefined, digits = 2): string {
  if (n === null || n === undefined || n === "") return "—";
  const v = typeof n === "string" ? Number(n) : n;
  if (!Number.isFinite(v)) return "—";
  return v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: Math.min(digits, 2) });
}

/** A price with as many decimals as its size needs (58,921.11; 0.09631). */
export function price(n: number | string | null | undefined): string {
  const v = typeof n === "string" ? Number(n) : n;
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  const digits = Math.abs(v) >= 1000 ? 2 : Math.abs(v) >= 1 ? 4 : 6;
  return v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 2 });
}

export function signed(n: number | string | null | undefined, digits = 2): string {
  const v = typeof n === "string" ? Number(n) : n;
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  return (v > 0 ? "+" : "") + fmt(v, digits);
}

export const tone = (n: number | string | null | undefined): "up" | "down" | "" => {
  const v = Number(n);
  return !Number.isFinite(v) || v === 0 ? "" : v > 0 ? "up" : "down";
};

/** Every time on every page: UTC, with the year, labelled ("2025-06-14 09:31 UTC"). */
export const time = (t: number | string): string => formatTime(t);

/** A time in a table, saying on hover which clock it was read from (the wall clock, or the market's). */
export function When({ t, clock = "wall", note }: { t: number | string; clock?: Clock; note?: string }) {
  return <time dateTime={toDate(t)?.toISOString()} title={note ? `${CLOCK_NOTE[clock]}; ${note}` : CLOCK_NOTE[clock]}>{formatTime(t)}</time>;
}

export const TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d"];
export const TF_SECONDS: Record<string, number> = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "4h": 14400, "1d": 86400 };
