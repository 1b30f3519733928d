import { describe, expect, it } from "vitest";
import { ApiError, toApiError } from "./client";

describe("API errors", () => {
  it("keeps the message and the field errors of a 4xx", async () => {
    const res = new Response(JSON.stringify({ detail: "password: too short", errors: [{ field: "password", message: "use at least 10 characters" }] }), { status: 422 });
    const err = await toApiError(res);
    expect(err.status).toBe(422);
    expect(err.message).toBe("password: too short");
    expect(err.forField("password")).toBe("use at least 10 characters");
    expect(err.forField("email")).toBeUndefined();
  });

  it("matches nested fields to their form field", () => {
    const err = new ApiError(422, "bad", [{ field: "params.fast", message: "must be a number" }]);
    expect(err.forField("params")).toBe("must be a number");
  });

  it("survives a body that is not JSON", async () => {
    const err = await toApiError(new Response("<html>", { status: 502, statusText: "Bad Gateway" }));
    expect(err.message).toBe("Bad Gateway");
  });
});
