import { describe, expect, it } from "vitest";
import { ApiError, toApiError } from "./api/client";
import { checkOf, checkOfFailure, saveFailure } from "./check";
import { FieldErrors } from "./forms";

const SIZE = "the code is 102,400 characters long; the limit is 65,536 (64 KiB)";
const refused = (status: number, body: unknown) => toApiError(new Response(JSON.stringify(body), { status }));

describe("the editor's check", () => {
  it("says no errors only when the sandbox answered so", () => {
    expect(checkOf({ ok: true, errors: [] })).toEqual({ state: "ok" });
    expect(checkOf({ ok: false, errors: [{ line: 3, message: "unexpected symbol near '='" }] }))
      .toEqual({ state: "errors", errors: [{ line: 3, message: "unexpected symbol near '='" }] });
    expect(checkOf({ ok: false, errors: [] }).state).toBe("errors");
  });

  it("shows a refused size as an error of the code", async () => {
    const e = await refused(422, { detail: `code: ${SIZE}`, errors: [{ field: "code", message: SIZE }] });
    expect(checkOfFailure(e)).toEqual({ state: "errors", errors: [{ line: null, message: SIZE }] });
    const tooBig = await refused(413, { detail: "request body larger than 256 KiB", errors: [] });
    expect(checkOfFailure(tooBig)).toEqual({ state: "errors", errors: [{ line: null, message: "the code is too large to send: request body larger than 256 KiB" }] });
  });

  it("says the code was not checked, and why, when the server could not check it", async () => {
    const offline = new ApiError(0, "Cannot reach the server. Check that tradewind is running, then try again.");
    expect(checkOfFailure(offline)).toEqual({ state: "unchecked", reason: offline.message });
    const busy = await refused(429, { detail: "a validation of your code is still running; wait for it to finish", errors: [] });
    expect(checkOfFailure(busy)).toEqual({ state: "unchecked", reason: "a validation of your code is still running; wait for it to finish" });
    const down = await refused(503, { detail: "strategy validation is unavailable right now; try again shortly", errors: [] });
    expect(checkOfFailure(down).state).toBe("unchecked");
    expect(checkOfFailure(await refused(500, { detail: "internal error; it has been logged", errors: [] })).state).toBe("unchecked");
  });
});

describe("a failed save", () => {
  it("says which line is wrong, and how many more are", async () => {
    const e = await refused(422, { detail: "the code has errors: unexpected symbol near '='", errors: [
      { field: "code", line: 3, message: "unexpected symbol near '='" }, { field: "code", line: 9, message: "'end' expected" }] });
    expect(saveFailure(e)).toBe("Not saved: line 3 has an error: unexpected symbol near '=' (and 1 more)");
  });

  it("says the server's refusal of the size, the fields and the network in words", async () => {
    expect(saveFailure(await refused(422, { detail: `code: ${SIZE}`, errors: [{ field: "code", message: SIZE }] }))).toBe(`Not saved: ${SIZE}`);
    expect(saveFailure(await refused(413, { detail: "request body larger than 256 KiB", errors: [] })))
      .toBe("Not saved: the strategy is too large to send (request body larger than 256 KiB)");
    expect(saveFailure(new FieldErrors([{ field: "params", message: 'write parameters as name=value (got "fast")' }])))
      .toBe('Not saved: the default parameters: write parameters as name=value (got "fast")');
    expect(saveFailure(await refused(422, { detail: "name: String should have at least 1 character", errors: [{ field: "name", message: "String should have at least 1 character" }] })))
      .toBe("Not saved: the name: String should have at least 1 character");
    expect(saveFailure(new ApiError(0, "Cannot reach the server. Check that tradewind is running, then try again.")))
      .toBe("Not saved: Cannot reach the server. Check that tradewind is running, then try again.");
  });
});
