// A trading account's edit form <-> PATCH /api/traders/{id}: only what changed is sent; a key goes with its
// secret (the server checks the pair with the exchange, and never gives either back).
import type { FieldError, Schemas, Trader } from "./api/client";
import { assertValid, checkAmount } from "./forms";

export const LIMITS = [
  ["max_order_notional", "Largest order (quote)"],
  ["max_position", "Largest position (quote)"],
  ["daily_loss_limit", "Daily loss limit (quote)"],
] as const;

export type Limit = (typeof LIMITS)[number][0];

export interface AccountForm {
  name: string;
  apiKey: string;
  apiSecret: string;
  limits: Record<Limit, string>;
}

/** "250.000000000000000000" (a NUMERIC column's way) as "250"; "" for no limit. */
export function plainAmount(v: string | null | undefined): string {
  if (v === null || v === undefined) return "";
  return v.includes(".") ? v.replace(/0+$/, "").replace(/\.$/, "") : v;
}

/** The form filled in with the account as it is; the key fields start empty (the key is never shown). */
export function accountForm(t: Trader): AccountForm {
  return {
    name: t.name,
    apiKey: "",
    apiSecret: "",
    limits: Object.fromEntries(LIMITS.map(([f]) => [f, plainAmount(t[f])])) as Record<Limit, string>,
  };
}

/** The PATCH body for what the form changed ({} when nothing did); throws the form's field errors. */
export function accountPatch(t: Trader, f: AccountForm): Schemas["TraderPatch"] {
  const key = f.apiKey.trim(), secret = f.apiSecret.trim();
  const errors: (FieldError | null)[] = [
    f.name.trim() ? null : { field: "name", message: "enter a name" },
    ...LIMITS.map(([l]) => checkAmount(l, f.limits[l], { optional: true })),
  ];
  if (t.paper && (key || secret)) errors.push({ field: "api_key", message: "a paper account takes no API key" });
  else if (key && !secret) errors.push({ field: "api_secret", message: "enter the secret of the new key too" });
  else if (secret && !key) errors.push({ field: "api_key", message: "enter the new key too" });
  assertValid(errors);
  const body: Schemas["TraderPatch"] = {};
  if (f.name !== t.name) body.name = f.name;
  for (const [l] of LIMITS) {
    const now = plainAmount(f.limits[l].trim());
    if (now !== plainAmount(t[l])) body[l] = now || null;
  }
  if (key) {
    body.api_key = key;
    body.api_secret = secret;
  }
  return body;
}
