// What the editor says about the code in it: only what the server's sandbox answered for that very text. A
// check the server refused, or never received, is said as such: never "No errors".
import type { ApiError, Diagnostic } from "./api/client";

export type Check =
  | { state: "checking" } // sent (or about to be): no answer for this text yet
  | { state: "ok" } // the sandbox compiled it without an error
  | { state: "errors"; errors: Diagnostic[] } // errors in the code: compile errors, or the server refused its size
  | { state: "unchecked"; reason: string }; // the server did not check it (unreachable, busy, unavailable)

export const CHECKING: Check = { state: "checking" };

/** The check an answer of POST /api/strategies/validate makes. */
export function checkOf(res: { ok: boolean; errors: Diagnostic[] }): Check {
  if (res.errors.length) return { state: "errors", errors: res.errors };
  return res.ok ? { state: "ok" } : { state: "errors", errors: [{ line: null, message: "the sandbox refused the code without saying why" }] };
}

/** The check a refused or failed validation makes: the code's own fault (its size, a field error on it) is an
 *  error in the code; anything else means the code was not checked, and says why. */
export function checkOfFailure(e: ApiError): Check {
  const onCode = codeErrors(e);
  if (onCode.length) return { state: "errors", errors: onCode };
  if (e.status === 413) return { state: "errors", errors: [{ line: null, message: `the code is too large to send: ${e.message}` }] };
  if (e.status === 422) return { state: "errors", errors: [{ line: null, message: e.message }] };
  return { state: "unchecked", reason: e.message };
}

/** The API's errors about the code, each with its line when it has one. */
export function codeErrors(e: ApiError): Diagnostic[] {
  return e.errors.filter((f) => f.field === "code").map((f) => ({ line: f.line ?? null, message: f.message }));
}

const FIELD_NAMES: Record<string, string> = { name: "the name", description: "the description", params: "the default parameters" };

/** Why a save failed, in a sentence that starts "Not saved:". */
export function saveFailure(e: ApiError): string {
  const onCode = codeErrors(e);
  if (onCode.length) {
    const first = onCode[0];
    const more = onCode.length > 1 ? ` (and ${onCode.length - 1} more)` : "";
    return first.line ? `Not saved: line ${first.line} has an error: ${first.message}${more}` : `Not saved: ${first.message}${more}`;
  }
  const field = e.errors.find((f) => f.field.split(".")[0] in FIELD_NAMES);
  if (field) return `Not saved: ${FIELD_NAMES[field.field.split(".")[0]]}: ${field.message}`;
  if (e.status === 413) return `Not saved: the strategy is too large to send (${e.message})`;
  return `Not saved: ${e.message}`;
}
