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
