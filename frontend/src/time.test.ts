import { describe, expect, it } from "vitest";
import { formatTime } from "./time";

// Far from UTC, so that a time shown in the browser's zone would fail these.
(globalThis as unknown as { process: { env: Record<string, string> } }).process.env.TZ = "Asia/Kolkata";

describe("times", () => {
  it("are UTC with the year, labelled, from epoch milliseconds or ISO 8601", () => {
    expect(formatTime(Date.UTC(2025, 5, 14, 9, 31, 5))).toBe("2025-06-14 09:31 UTC");
    expect(formatTime("2025-06-14T09:31:05.123456+00:00")).toBe("2025-06-14 09:31 UTC");
    expect(formatTime("2025-06-14T11:31:05+02:00")).toBe("2025-06-14 09:31 UTC");
    expect(formatTime(new Date(Date.UTC(2031, 0, 2, 23, 59)))).toBe("2031-01-02 23:59 UTC");
  });

  it("read an ISO time without a zone as UTC, not the browser's time", () => {
    expect(new Date(2025, 5, 14, 9, 31).getTimezoneOffset()).toBe(-330); // the zone above is in effect
    expect(formatTime("2025-06-14T09:31:05")).toBe("2025-06-14 09:31 UTC");
    expect(formatTime("2025-06-14T09:31:05.5")).toBe("2025-06-14 09:31 UTC");
  });

  it("show seconds when asked, and a dash for what is not a time", () => {
    expect(formatTime(Date.UTC(2025, 11, 31, 23, 59, 58), { seconds: true })).toBe("2025-12-31 23:59:58 UTC");
    expect(formatTime("not a time")).toBe("—");
    expect(formatTime(Number.NaN)).toBe("—");
  });
});
