import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, onUnauthorized, request, toApiError } from "./client";

describe("API errors", () => {
  it("keeps the message and the field errors of a 4xx", async () => {
    const res = new Response(JSON.stringify({ detail: "password: too short", errors: [{ field: "password", message: "use at least 10 characters" }] }), { status: 422 });
    const err = await toApiError(res);
    expect(err.status).toBe(422);
    expect(err.message).toBe("password: too short");
    expect(err.forField("password")).toBe("use at least 10 characters");
    expect(err.forField("email")).toBeUndefined();
    expect(err.general(["password"])).toBeUndefined();
    expect(err.general(["email"])).toBe("password: too short");
  });

  it("matches nested fields to their form field, and keeps a code error's line", async () => {
    const err = new ApiError(422, "bad", [{ field: "params.fast", message: "must be a number" }]);
    expect(err.forField("params")).toBe("must be a number");
    expect(err.forField("param")).toBeUndefined();
    const code = await toApiError(new Response(JSON.stringify({ detail: "code", errors: [{ field: "code", line: 3, message: "')' expected" }] }), { status: 422 }));
    expect(code.errors[0].line).toBe(3);
  });

  it("survives a body that is not JSON, or errors that are not objects", async () => {
    expect((await toApiError(new Response("<html>", { status: 502, statusText: "Bad Gateway" }))).message).toBe("Bad Gateway");
    const odd = await toApiError(new Response(JSON.stringify({ detail: "x", errors: [null, "y", { field: "a", message: "b" }] }), { status: 422 }));
    expect(odd.errors).toEqual([{ field: "a", message: "b" }]);
  });

  it("says when to try again after a throttled login", async () => {
    const res = new Response(JSON.stringify({ detail: "Too many failed logins.", errors: [] }), { status: 429, headers: { "Retry-After": "120" } });
    expect((await toApiError(res)).message).toBe("Too many failed logins. Try again in 2 min.");
  });

  it("says it once when the server's message already says when", async () => {
    const detail = "5 failed logins to this account from your address; try again in 57 s";
    const res = new Response(JSON.stringify({ detail, errors: [] }), { status: 429, headers: { "Retry-After": "57" } });
    expect((await toApiError(res)).message).toBe(detail);
  });
});

describe("requests", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("sends the CSRF cookie as a header on writes only", async () => {
    const seen: RequestInit[] = [];
    vi.stubGlobal("document", { cookie: "other=1; tw_csrf=abc123" });
    vi.stubGlobal("fetch", async (_: string, init: RequestInit) => { seen.push(init); return new Response("{}", { status: 200 }); });
    await request("GET", "/api/strategies");
    await request("POST", "/api/strategies", { name: "x" });
    expect((seen[0].headers as Record<string, string>)["X-CSRF-Token"]).toBeUndefined();
    expect((seen[1].headers as Record<string, string>)["X-CSRF-Token"]).toBe("abc123");
    expect(seen[1].body).toBe('{"name":"x"}');
  });

  it("reports an ended session on a 401, but not for a failed login", async () => {
    let ended = 0;
    onUnauthorized(() => ended++);
    vi.stubGlobal("document", { cookie: "" });
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify({ detail: "log in first", errors: [] }), { status: 401 }));
    await expect(request("GET", "/api/assignments")).rejects.toMatchObject({ status: 401 });
    await expect(request("POST", "/api/auth/login", {})).rejects.toMatchObject({ status: 401 });
    expect(ended).toBe(1);
  });

  it("turns a network failure into a message a person can act on", async () => {
    vi.stubGlobal("document", { cookie: "" });
    vi.stubGlobal("fetch", async () => { throw new TypeError("Failed to fetch"); });
    await expect(request("GET", "/api/markets")).rejects.toThrow(/Cannot reach the server/);
  });
});
