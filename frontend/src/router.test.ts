import { describe, expect, it } from "vitest";
import { afterLogin, AUTH_PAGES } from "./router";

describe("afterLogin", () => {
  it("goes to the dashboard by default", () => {
    expect(afterLogin("")).toBe("/");
    expect(afterLogin("?other=1")).toBe("/");
  });
  it("goes to the page asked for, with its query", () => {
    expect(afterLogin("?next=/strategies/3")).toBe("/strategies/3");
    expect(afterLogin("?next=" + encodeURIComponent("/trades?assignment=2"))).toBe("/trades?assignment=2");
    expect(afterLogin("?next=/app/markets/1")).toBe("/markets/1");
    expect(afterLogin("?next=/app")).toBe("/");
  });
  it("never leaves the app, nor goes back to a log-in page", () => {
    for (const next of ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "strategies", "/login", "/register?x=1", "/app/login"]) {
      expect(afterLogin("?next=" + encodeURIComponent(next))).toBe("/");
    }
  });
  it("knows the log-in pages", () => {
    expect([...AUTH_PAGES].sort()).toEqual(["/login", "/register"]);
  });
});
