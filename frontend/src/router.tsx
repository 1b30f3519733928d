import { useEffect, useState } from "react";

const BASE = "/app";

let flash: string | null = null;

/** A message for the next page to show once ("Saved: version 1" after a new strategy gets its address). */
export function takeFlash(): string | null {
  const f = flash;
  flash = null;
  return f;
}

let leaveGuard: (() => boolean) | null = null;

/** While set, in-app navigation asks before leaving (the editor with unsaved changes sets it). */
export function setLeaveGuard(guard: (() => boolean) | null): void {
  leaveGuard = guard;
}

export function navigate(path: string, { replace = false, message }: { replace?: boolean; message?: string } = {}) {
  if (leaveGuard && !leaveGuard()) return;
  leaveGuard = null;
  flash = message ?? null;
  if (replace) history.replaceState(null, "", BASE + path);
  else history.pushState(null, "", BASE + path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

/** The path under /app, e.g. "/strategies/3"; re-renders when the path or the query string changes. */
export function usePath(): string {
  const get = () => location.pathname.replace(/^\/app/, "") || "/";
  const [loc, setLoc] = useState(() => get() + location.search);
  useEffect(() => {
    const on = () => setLoc(get() + location.search);
    window.addEventListener("popstate", on);
    return () => window.removeEventListener("popstate", on);
  }, []);
  return loc.split("?")[0];
}

/** The log-in and sign-up pages: a logged-in user at one of them is sent on (``afterLogin``). A logged-out
 * visitor sees the log-in form at any address, and stays at that address once logged in. */
export const AUTH_PAGES: ReadonlySet<string> = new Set(["/login", "/register"]);

/** Where a logged-in user at a log-in page goes: ``?next=`` when it is a page of this app, else the
 * dashboard (never another site: "//evil.example" and "/\\evil.example" are addresses of other hosts). */
export function afterLogin(search: string): string {
  let next = new URLSearchParams(search).get("next") ?? "";
  if (next === BASE || next.startsWith(BASE + "/")) next = next.slice(BASE.length) || "/";
  if (!next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\") || AUTH_PAGES.has(next.split(/[?#]/)[0])) return "/";
  return next;
}

export function Link({ to, children, className, title }: { to: string; children: React.ReactNode; className?: string; title?: string }) {
  return (
    <a href={BASE + to} className={className} title={title} onClick={(e) => {
      if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return; // a new tab keeps the browser's way
      e.preventDefault();
      navigate(to);
    }}>
      {children}
    </a>
  );
}
