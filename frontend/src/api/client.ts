// A small typed client over fetch. Types come from the OpenAPI document (`make api-client`).
import type { components } from "./schema";

export type Schemas = components["schemas"];
export type Strategy = Schemas["StrategyOut"];
export type Trader = Schemas["TraderOut"];
export type Assignment = Schemas["AssignmentOut"];
export type Market = Schemas["MarketOut"];
export type Candle = Schemas["CandleOut"];
export type Evaluation = Schemas["EvaluationOut"];
export type Order = Schemas["OrderOut"];
export type Position = Schemas["PositionOut"];
export type User = Schemas["UserOut"];
export type Latency = Schemas["LatencyOut"];
export type Quotes = Schemas["QuotesOut"];
export type Quote = Schemas["QuoteOut"];
export type Diagnostic = Schemas["Diagnostic"];
export type AlertChannel = Schemas["ChannelOut"];
export type Trades = Schemas["TradesOut"];
export type Trip = Schemas["TripOut"];
export interface Page<T> { items: T[]; next_before_id: number | null }

export type BacktestIn = Schemas["BacktestIn"];

export interface FieldError { field: string; message: string; line?: number | null }

/** An error answered by the API: a message and, where it concerns a field, that field. */
export class ApiError extends Error {
  constructor(public status: number, message: string, public errors: FieldError[] = []) {
    super(message);
  }
  /** The message for one form field, if the API named it. */
  forField(field: string): string | undefined {
    return this.errors.find((e) => e.field === field || e.field.startsWith(field + "."))?.message;
  }
  /** The message to show apart from the fields: only when none of `shown` carries it. */
  general(shown: string[]): string | undefined {
    return shown.some((f) => this.forField(f)) ? undefined : this.message;
  }
}

export async function toApiError(res: Response): Promise<ApiError> {
  let body: { detail?: unknown; errors?: FieldError[] } = {};
  try {
    body = await res.json();
  } catch {
    /* not JSON: keep the status text */
  }
  const detail = typeof body.detail === "string" ? body.detail : res.statusText || `HTTP ${res.status}`;
  const errors = Array.isArray(body.errors) ? body.errors.filter((e) => e && typeof e.field === "string" && typeof e.message === "string") : [];
  if (res.status === 429 && !/try again/i.test(detail)) { // the server's messages say when; add it to one that does not
    const wait = Number(res.headers.get("Retry-After"));
    if (wait > 0) return new ApiError(429, `${detail} Try again in ${wait < 90 ? `${wait} s` : `${Math.ceil(wait / 60)} min`}.`, errors);
  }
  return new ApiError(res.status, detail, errors);
}

function csrfToken(): string | undefined {
  return document.cookie.split("; ").find((c) => c.startsWith("tw_csrf="))?.slice("tw_csrf=".length);
}

/** Called when the API answers 401 to a logged-in page: the session ended, show the login form. */
let unauthorized: () => void = () => {};
export function onUnauthorized(f: () => void): void {
  unauthorized = f;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") {
    const csrf = csrfToken();
    if (csrf) headers["X-CSRF-Token"] = csrf;
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "Cannot reach the server. Check that tradewind is running, then try again.");
  }
  if (!res.ok) {
    const err = await toApiError(res);
    if (res.status === 401 && !path.startsWith("/api/auth/")) unauthorized();
    throw err;
  }
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const api = {
  me: () => request<User>("GET", "/api/auth/me"),
  register: (email: string, password: string) => request<User>("POST", "/api/auth/register", { email, password }),
  login: (email: string, password: string) => request<{ token: string; user: User }>("POST", "/api/auth/login", { email, password }),
  logout: () => request<void>("POST", "/api/auth/logout"),
  markets: () => request<Page<Market>>("GET", "/api/markets"),
  market: (id: number) => request<Market>("GET", `/api/markets/${id}`),
  candles: (id: number, timeframe: string, limit = 300, before?: number) =>
    request<Candle[]>("GET", `/api/markets/${id}/candles?timeframe=${encodeURIComponent(timeframe)}&limit=${limit}${before ? `&before=${before}` : ""}`),
  strategies: () => request<Page<Strategy>>("GET", "/api/strategies"),
  strategy: (id: number) => request<Strategy>("GET", `/api/strategies/${id}`),
  versions: (id: number) => request<Schemas["VersionOut"][]>("GET", `/api/strategies/${id}/versions`),
  createStrategy: (b: Schemas["StrategyIn"]) => request<Strategy>("POST", "/api/strategies", b),
  updateStrategy: (id: number, b: Schemas["StrategyPatch"]) => request<Schemas["StrategySaved"]>("PATCH", `/api/strategies/${id}`, b),
  deleteStrategy: (id: number) => request<void>("DELETE", `/api/strategies/${id}`),
  validate: (code: string) => request<Schemas["ValidationOut"]>("POST", "/api/strategies/validate", { code }),
  traders: () => request<Page<Trader>>("GET", "/api/traders"),
  createTrader: (b: Schemas["TraderIn"]) => request<Trader>("POST", "/api/traders", b),
  updateTrader: (id: number, b: Schemas["TraderPatch"]) => request<Trader>("PATCH", `/api/traders/${id}`, b),
  deleteTrader: (id: number) => request<void>("DELETE", `/api/traders/${id}`),
  balances: (id: number) => request<{ balances: Record<string, string> }>("GET", `/api/traders/${id}/balances`),
  resetTrader: (id: number) => request<Schemas["ResetOut"]>("POST", `/api/traders/${id}/reset`),
  trades: (q: { trader_id?: number; assignment_id?: number; limit?: number }) =>
    request<Trades>("GET", `/api/trades?limit=${q.limit ?? 200}${q.trader_id ? `&trader_id=${q.trader_id}` : ""}${q.assignment_id ? `&assignment_id=${q.assignment_id}` : ""}`),
  assignments: () => request<Page<Assignment>>("GET", "/api/assignments"),
  createAssignment: (b: Schemas["AssignmentIn"]) => request<Assignment>("POST", "/api/assignments", b),
  updateAssignment: (id: number, b: Schemas["AssignmentPatch"]) => request<Assignment>("PATCH", `/api/assignments/${id}`, b),
  checkAllocation: (b: Schemas["AllocationCheckIn"]) => request<Schemas["AllocationOut"]>("POST", "/api/assignments/allocation", b),
  pause: (id: number) => request<Assignment>("POST", `/api/assignments/${id}/pause`),
  resume: (id: number) => request<Assignment>("POST", `/api/assignments/${id}/resume`),
  deleteAssignment: (id: number) => request<void>("DELETE", `/api/assignments/${id}`),
  latency: (id: number) => request<Latency>("GET", `/api/assignments/${id}/latency`),
  quotes: (id: number) => request<Quotes>("GET", `/api/assignments/${id}/quotes`),
  evaluations: (assignmentId?: number, limit = 100) =>
    request<Page<Evaluation>>("GET", `/api/evaluations?limit=${limit}${assignmentId ? `&assignment_id=${assignmentId}` : ""}`),
  orders: (q: { assignment_id?: number; trader_id?: number; limit?: number; status?: string } = {}) =>
    request<Page<Order>>("GET", `/api/orders?limit=${q.limit ?? 100}${q.assignment_id ? `&assignment_id=${q.assignment_id}` : ""}${q.trader_id ? `&trader_id=${q.trader_id}` : ""}${q.status ? `&status=${q.status}` : ""}`),
  positions: () => request<Position[]>("GET", "/api/positions"),
  // Backtest answers are read by backtest.ts (trades and the curve are untyped lists in the document).
  backtests: (limit = 50) => request<Page<Schemas["BacktestOut"]>>("GET", `/api/backtests?limit=${limit}`),
  backtest: (id: number) => request<Schemas["BacktestOut"]>("GET", `/api/backtests/${id}`),
  runBacktest: (b: BacktestIn) => request<Schemas["BacktestQueued"]>("POST", "/api/backtests", b),
  studies: (limit = 50) => request<Page<Schemas["StudyOut"]>>("GET", `/api/studies?limit=${limit}`),
  study: (id: number) => request<Schemas["StudyOut"]>("GET", `/api/studies/${id}`),
  startStudy: (b: Schemas["StudyIn"]) => request<Schemas["StudyQueued"]>("POST", "/api/studies", b),
  resumeStudy: (id: number, trials?: number) => request<Schemas["StudyQueued"]>("POST", `/api/studies/${id}/resume`, trials ? { trials } : {}),
  // Run history: every backtest, optimisation and walk-forward (runs.ts reads them).
  runs: (q: { kind?: string; limit?: number; before?: string } = {}) =>
    request<Schemas["RunPage"]>("GET", `/api/runs?limit=${q.limit ?? 50}${q.kind ? `&kind=${q.kind}` : ""}${q.before ? `&before=${encodeURIComponent(q.before)}` : ""}`),
  run: (kind: string, id: number) => request<Schemas["RunOut"]>("GET", `/api/runs/${kind}/${id}`),
  compareRuns: (refs: string[]) => request<Schemas["CompareOut"]>("GET", `/api/runs/compare?runs=${encodeURIComponent(refs.join(","))}`),
  walkforwards: (limit = 50) => request<Page<Schemas["WalkForwardOut"]>>("GET", `/api/walkforwards?limit=${limit}`),
  walkforward: (id: number) => request<Schemas["WalkForwardOut"]>("GET", `/api/walkforwards/${id}`),
  startWalkForward: (b: Schemas["WalkForwardIn"]) => request<Schemas["WalkForwardQueued"]>("POST", "/api/walkforwards", b),
  audit: (limit = 15) => request<Page<Schemas["AuditOut"]>>("GET", `/api/audit?limit=${limit}`),
  kill: (flatten = false) => request<Schemas["KillOut"]>("POST", `/api/killswitch${flatten ? "?flatten=true" : ""}`),
  closePosition: (id: number) => request<Schemas["CloseOut"]>("POST", `/api/assignments/${id}/close`),
  flatten: () => request<Schemas["FlattenOut"]>("POST", "/api/flatten"),
  unkill: () => request<unknown>("DELETE", "/api/killswitch"),
  alertEvents: () => request<Schemas["EventOut"][]>("GET", "/api/alerts/events"),
  alertChannels: () => request<Page<AlertChannel>>("GET", "/api/alerts/channels"),
  createAlertChannel: (b: Schemas["ChannelIn"]) => request<Schemas["ChannelCreated"]>("POST", "/api/alerts/channels", b),
  updateAlertChannel: (id: number, b: Schemas["ChannelPatch"]) => request<AlertChannel>("PATCH", `/api/alerts/channels/${id}`, b),
  deleteAlertChannel: (id: number) => request<void>("DELETE", `/api/alerts/channels/${id}`),
  testAlertChannel: (id: number) => request<Schemas["SentOut"]>("POST", `/api/alerts/channels/${id}/test`),
  newWebhookSecret: (id: number) => request<Schemas["SecretOut"]>("POST", `/api/alerts/channels/${id}/secret`),
  alertDeliveries: (id: number, limit = 20) => request<Page<Schemas["DeliveryOut"]>>("GET", `/api/alerts/channels/${id}/deliveries?limit=${limit}`),
};
