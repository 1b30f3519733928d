import { describe, expect, it } from "vitest";
import { ApiError } from "./api/client";
import { asApiError, assertValid, checkAmount, checkBps, checkInterval, checkPercent, checkCredentials, checkQuoting, checkRun, checkTrigger, day, FieldErrors, formatParams, parseParams, quotingBody, runBody, runQuotes, searchBody, triggerBody } from "./forms";

describe("strategy parameters", () => {
  it("reads numbers, booleans and strings, separated by commas or new lines", () => {
    expect(parseParams("fast=10, slow = 30\nuse_rsi=true\nmode=trend, ratio=0.5")).toEqual({ fast: 10, slow: 30, use_rsi: true, mode: "trend", ratio: 0.5 });
  });

  it("gives nothing for an empty field and keeps an empty value as a string", () => {
    expect(parseParams("  ")).toEqual({});
    expect(parseParams("label=")).toEqual({ label: "" });
  });

  it("refuses a part without '=' and names the params field", () => {
    try {
      parseParams("fast=10, slow");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(FieldErrors);
      expect((e as ApiError).forField("params")).toContain('"slow"');
    }
  });

  it("refuses names Lua cannot use and names given twice", () => {
    expect(() => parseParams("2fast=1")).toThrow(/parameter name/);
    expect(() => parseParams("a-b=1")).toThrow(/parameter name/);
    expect(() => parseParams("fast=1, fast=2")).toThrow(/twice/);
  });

  it("formats saved parameters back into the same text", () => {
    const p = { fast: 10, slow: 30, on: false };
    expect(formatParams(p)).toBe("fast=10, slow=30, on=false");
    expect(parseParams(formatParams(p))).toEqual(p);
    expect(formatParams(null)).toBe("");
  });
});

describe("amounts and credentials", () => {
  it("accepts positive decimals and names the field otherwise", () => {
    expect(checkAmount("allocation", "1000")).toBeNull();
    expect(checkAmount("allocation", " 0.25 ")).toBeNull();
    expect(checkAmount("allocation", "0")?.message).toMatch(/greater than 0/);
    expect(checkAmount("allocation", "-5")?.field).toBe("allocation");
    expect(checkAmount("allocation", "1e3")).not.toBeNull();
    expect(checkAmount("allocation", "1.0000000000001")?.message).toMatch(/12 decimal/);
    expect(checkAmount("allocation", "")?.message).toMatch(/enter/);
    expect(checkAmount("max", "", { optional: true })).toBeNull();
  });

  it("accepts a fee from 0 up to the maximum", () => {
    expect(checkPercent("fee", "0")).toBeNull();
    expect(checkPercent("fee", "0.1", 10)).toBeNull();
    expect(checkPercent("fee", "10", 10)?.message).toMatch(/under 10/);
    expect(checkPercent("fee", "-1")?.field).toBe("fee");
  });

  it("asks for an email and, on sign-up, a 10-character password", () => {
    expect(checkCredentials("a@b.co", "0123456789", true)).toEqual([]);
    expect(checkCredentials("nope", "x", false).map((e) => e.field)).toEqual(["email"]);
    expect(checkCredentials("a@b.co", "short", true)).toEqual([{ field: "password", message: "use at least 10 characters" }]);
    expect(checkCredentials("a@b.co", "", false).map((e) => e.field)).toContain("password");
  });

  it("throws the collected field errors, or nothing when all passed", () => {
    expect(() => assertValid([null, null])).not.toThrow();
    try {
      assertValid([null, { field: "allocation", message: "must be greater than 0" }]);
      expect.unreachable();
    } catch (e) {
      expect((e as ApiError).forField("allocation")).toBe("must be greater than 0");
      expect((e as ApiError).general(["allocation"])).toBeUndefined();
    }
  });

  it("turns anything thrown into an ApiError with its message", () => {
    expect(asApiError(new Error("boom")).message).toBe("boom");
    const e = new ApiError(409, "taken");
    expect(asApiError(e)).toBe(e);
  });
});

describe("the trigger of an assignment", () => {
  const tick = { trigger: "tick", min_interval_ms: "1000", max_position: "" };

  it("takes a whole number of milliseconds from 100 to 3,600,000", () => {
    expect(checkInterval("min_interval_ms", "1000")).toBeNull();
    expect(checkInterval("min_interval_ms", " 100 ")).toBeNull();
    expect(checkInterval("min_interval_ms", "3600000")).toBeNull();
    expect(checkInterval("min_interval_ms", "99")?.message).toBe("must be from 100 to 3,600,000 ms");
    expect(checkInterval("min_interval_ms", "3600001")?.field).toBe("min_interval_ms");
    expect(checkInterval("min_interval_ms", "250.5")?.message).toMatch(/whole number/);
    expect(checkInterval("min_interval_ms", "")?.message).toMatch(/whole number/);
    expect(checkInterval("min_interval_ms", "-5")).not.toBeNull();
  });

  it("checks the interval and an optional max position only for tick assignments", () => {
    expect(checkTrigger(tick).filter(Boolean)).toEqual([]);
    expect(checkTrigger({ ...tick, max_position: "0.5" }).filter(Boolean)).toEqual([]);
    expect(checkTrigger({ ...tick, max_position: "0" }).filter(Boolean)).toEqual([{ field: "max_position", message: "must be greater than 0" }]);
    expect(checkTrigger({ ...tick, min_interval_ms: "50", max_position: "abc" }).filter(Boolean).map((e) => e?.field)).toEqual(["min_interval_ms", "max_position"]);
    expect(checkTrigger({ trigger: "candle", min_interval_ms: "nonsense", max_position: "-1" }).filter(Boolean)).toEqual([]);
    expect(checkTrigger({ ...tick, trigger: "bar" }).filter(Boolean).map((e) => e?.field)).toEqual(["trigger"]);
  });

  it("sends a tick assignment's interval and limit, and a candle one's trigger alone", () => {
    expect(triggerBody({ ...tick, min_interval_ms: " 250 ", max_position: " 0.1 " })).toEqual({ trigger: "tick", min_interval_ms: 250, max_position: "0.1" });
    expect(triggerBody(tick)).toEqual({ trigger: "tick", min_interval_ms: 1000, max_position: null });
    expect(triggerBody({ trigger: "candle", min_interval_ms: "1000", max_position: "0.1" })).toEqual({ trigger: "candle" });
  });

  it("shows the server's message for a trigger field like any other", () => {
    try {
      assertValid(checkTrigger({ ...tick, min_interval_ms: "10" }));
      expect.unreachable();
    } catch (e) {
      expect((e as ApiError).forField("min_interval_ms")).toMatch(/from 100/);
      expect((e as ApiError).general(["min_interval_ms", "max_position"])).toBeUndefined();
    }
  });
});

describe("a backtest's quoting fields", () => {
  const empty = { trigger: "", spread_bps: "", max_position: "", min_interval_ms: "" };

  it("quote for the trigger tick, or without a trigger for a strategy that quotes by default", () => {
    expect(runQuotes({ trigger: "tick" }, false)).toBe(true);
    expect(runQuotes({ trigger: "" }, true)).toBe(true);
    expect(runQuotes({ trigger: "" }, false)).toBe(false);
    expect(runQuotes({ trigger: "candle" }, true)).toBe(false);
  });

  it("are optional, and checked within the API's bounds only for a run that quotes", () => {
    expect(checkQuoting(empty, true).filter(Boolean)).toEqual([]);
    expect(checkQuoting({ ...empty, spread_bps: "2.5", max_position: "0.5", min_interval_ms: "1000" }, true).filter(Boolean)).toEqual([]);
    const bad = { trigger: "tick", spread_bps: "0", max_position: "-1", min_interval_ms: "99" };
    expect(checkQuoting(bad, true).filter(Boolean).map((e) => e?.field)).toEqual(["spread_bps", "max_position", "min_interval_ms"]);
    expect(checkQuoting({ ...bad, trigger: "candle" }, false).filter(Boolean)).toEqual([]);
    expect(checkQuoting({ ...empty, trigger: "book" }, false).filter(Boolean).map((e) => e?.field)).toEqual(["trigger"]);
    expect(checkBps("spread_bps", "1000")).toBeNull();
    expect(checkBps("spread_bps", "1000.5")?.message).toMatch(/at most 1,000 bps/);
    expect(checkBps("spread_bps", "wide")?.message).toMatch(/above 0/);
    expect(checkBps("spread_bps", "")?.message).toMatch(/enter a spread/);
  });

  it("send only what was set, and nothing but the trigger for a run that does not quote", () => {
    expect(quotingBody(empty, true)).toEqual({});
    expect(quotingBody({ trigger: "tick", spread_bps: " 5 ", max_position: "0.25", min_interval_ms: "5000" }, true))
      .toEqual({ trigger: "tick", spread_bps: 5, max_position: 0.25, min_interval_ms: 5000 });
    expect(quotingBody({ trigger: "candle", spread_bps: "5", max_position: "1", min_interval_ms: "" }, false)).toEqual({ trigger: "candle" });
    expect(quotingBody({ ...empty, spread_bps: "5" }, false)).toEqual({});
  });
});

describe("the run fields of a backtest, an optimisation and a walk-forward", () => {
  const run = { strategy_id: "3", market_id: "1", timeframe: "5m", from: "2025-06-01", to: "2025-06-14" };

  it("need a strategy and a market, and an end not before the start", () => {
    expect(checkRun(run).filter(Boolean)).toEqual([]);
    expect(checkRun({ ...run, to: run.from }).filter(Boolean)).toEqual([]);
    expect(checkRun({ ...run, strategy_id: "", market_id: "", to: "2025-05-31" }).map((e) => e?.field)).toEqual(["strategy_id", "market_id", "to"]);
    expect(checkRun({ ...run, from: "", to: "2025-05-31" }).filter(Boolean)).toEqual([]);
  });

  it("send the ids as numbers and the days from the first's start to the last's end, in UTC", () => {
    expect(runBody(run)).toEqual({ strategy_id: 3, market_id: 1, timeframe: "5m", from: "2025-06-01T00:00:00Z", to: "2025-06-14T23:59:59Z" });
    expect(runBody({ ...run, from: "", to: "" })).toEqual({ strategy_id: 3, market_id: 1, timeframe: "5m" });
  });

  it("default to a range of days counted from today", () => {
    expect(day(0)).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(day(-2) < day(0)).toBe(true);
  });

  it("send a search's fee as a fraction and its fixed parameters typed", () => {
    expect(searchBody({ params: "size=0.5, mode=trend", fee: "0.1", lookback: "300" })).toEqual({ params: { size: 0.5, mode: "trend" }, fee: 0.001, lookback: 300 });
    expect(() => searchBody({ params: "size", fee: "0.1", lookback: "300" })).toThrow(FieldErrors);
  });
});
