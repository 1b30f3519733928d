import { describe, expect, it } from "vitest";
import { accountForm, accountPatch, plainAmount } from "./accounts";
import type { Trader } from "./api/client";
import { FieldErrors } from "./forms";

const trader = (t: Partial<Trader> = {}): Trader => ({ id: 7, name: "Kraken", exchange: "kraken", paper: false, sandbox: false, api_key_masked: "****1111",
  max_order_notional: null, max_position: "250.000000000000000000", daily_loss_limit: "50", created_at: "2025-06-14T09:31:00+00:00", ...t });

const errorsOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    if (e instanceof FieldErrors) return e.errors;
    throw e;
  }
  return [];
};

describe("editing an account", () => {
  it("starts from the account as it is, without its key, limits in plain numbers", () => {
    expect(accountForm(trader())).toEqual({ name: "Kraken", apiKey: "", apiSecret: "",
      limits: { max_order_notional: "", max_position: "250", daily_loss_limit: "50" } });
    expect(["250.000000000000000000", "0.500", "12", "", null].map(plainAmount)).toEqual(["250", "0.5", "12", "", ""]);
  });

  it("sends only what changed: nothing, a new name, a limit set or cleared", () => {
    const t = trader();
    expect(accountPatch(t, accountForm(t))).toEqual({});
    const f = accountForm(t);
    expect(accountPatch(t, { ...f, name: "Kraken main" })).toEqual({ name: "Kraken main" });
    expect(accountPatch(t, { ...f, limits: { ...f.limits, max_position: "", max_order_notional: "100" } }))
      .toEqual({ max_position: null, max_order_notional: "100" });
    expect(accountPatch(t, { ...f, limits: { ...f.limits, max_position: "250.0" } })).toEqual({});
  });

  it("sends a new key with its secret, and only both", () => {
    const t = trader();
    const f = accountForm(t);
    expect(accountPatch(t, { ...f, apiKey: " KEY-2222 ", apiSecret: "s3cret" })).toEqual({ api_key: "KEY-2222", api_secret: "s3cret" });
    expect(errorsOf(() => accountPatch(t, { ...f, apiKey: "KEY-2222" }))).toEqual([{ field: "api_secret", message: "enter the secret of the new key too" }]);
    expect(errorsOf(() => accountPatch(t, { ...f, apiSecret: "s3cret" }))).toEqual([{ field: "api_key", message: "enter the new key too" }]);
    const paper = trader({ paper: true, exchange: "sim", api_key_masked: null });
    expect(errorsOf(() => accountPatch(paper, { ...accountForm(paper), apiKey: "k", apiSecret: "s" }))[0].field).toBe("api_key");
  });

  it("refuses an empty name and a limit that is not an amount, under their fields", () => {
    const t = trader();
    const f = accountForm(t);
    expect(errorsOf(() => accountPatch(t, { ...f, name: "  ", limits: { ...f.limits, daily_loss_limit: "-5" } })).map((e) => e.field))
      .toEqual(["name", "daily_loss_limit"]);
  });
});
