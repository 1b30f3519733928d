import { describe, expect, it } from "vitest";
import type { ApiError } from "./api/client";
import { BAD_NUMBER, declaredParams, paramHint, paramText, paramTexts, parseParams, type ParamDecl } from "./forms";

const decl = (d: Partial<ParamDecl> & Pick<ParamDecl, "name" | "type">): ParamDecl => ({ min: null, max: null, step: null, log: false, choices: null, default: null, description: null, ...d });
const FAST = decl({ name: "fast", type: "int", min: 5, max: 50, default: 10, description: "the fast average" });
const K = decl({ name: "k", type: "float", min: 0.5, max: 2 });
const MODE = decl({ name: "mode", type: "choice", choices: ["a", 1, true], default: "a" });
const ON = decl({ name: "on", type: "bool", default: false });
const ALL = [FAST, K, MODE, ON];

function fieldErrors(f: () => unknown): Record<string, string> {
  try {
    f();
  } catch (e) {
    return Object.fromEntries((e as ApiError).errors.map((x) => [x.field, x.message]));
  }
  throw new Error("no errors");
}

describe("free-form parameters (a strategy that declares none)", () => {
  it("refuses a number too big for a double instead of sending it as text", () => {
    expect(fieldErrors(() => parseParams("fast=1e400"))).toEqual({ params: "fast=1e400 is not a finite number" });
    expect(parseParams("fast=1e3, name=abc")).toEqual({ fast: 1000, name: "abc" });
  });

  it("refuses the sweep syntax and says where ranges belong", () => {
    expect(fieldErrors(() => parseParams("fast=5..20"))).toEqual({ params: "fast=5..20: one value per parameter (a range is for a sweep: tradewind sweep, or Research)" });
    expect(() => parseParams("k=0.5..1.5:0.25")).toThrow(/one value per parameter/);
  });
});

describe("declared parameters", () => {
  it("fills each field with the saved value, else the default, else nothing", () => {
    expect(paramTexts(ALL, { fast: 12, mode: 1, extra: 5 })).toEqual({ fast: "12", k: "", mode: "1", on: "false" });
    expect(paramTexts(ALL, null)).toEqual({ fast: "10", k: "", mode: '"a"', on: "false" });
    expect(paramText(MODE, true)).toBe("true");
  });

  it("sends typed values, leaves empty fields to the default and keeps choices apart by type", () => {
    const texts = { fast: " 12 ", k: "", mode: "1", on: "true" };
    expect(declaredParams(ALL, texts)).toEqual({ fast: 12, mode: 1, on: true });
    expect(declaredParams(ALL, { ...texts, mode: '"a"', k: "1.5" })).toEqual({ fast: 12, k: 1.5, mode: "a", on: true });
    expect(declaredParams([FAST], {})).toEqual({ fast: 10 }); // not edited: the default shown is the value sent
  });

  it("names the field of a value that is no number; ranges are the server's (the same declaration)", () => {
    expect(fieldErrors(() => declaredParams(ALL, { fast: "abc", k: BAD_NUMBER }))).toEqual({ "params.fast": "enter a whole number", "params.k": "enter a number" });
    expect(fieldErrors(() => declaredParams([K], { k: "1e400" }))).toEqual({ "params.k": "enter a number" });
    expect(declaredParams([FAST], { fast: "500" })).toEqual({ fast: 500 });
  });

  it("says a parameter's description, range and default under its field", () => {
    expect(paramHint(FAST)).toBe("the fast average — 5 to 50 · default 10");
    expect(paramHint(decl({ name: "slow", type: "int", min: 16, max: 40, step: 2 }))).toBe("16 to 40 by 2");
    expect(paramHint(decl({ name: "x", type: "float" }))).toBe("");
  });
});
