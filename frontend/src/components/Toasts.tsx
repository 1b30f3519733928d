import { useEffect, useState } from "react";
import { liveToasts, notify, pushToast, toastOf, type Toast } from "../alerts";
import { Link } from "../router";
import type { StreamEvent } from "../stream";

type Subscribe = (f: (ev: StreamEvent) => void) => () => void;

/** Alerts of the in-browser channel, and alerts that failed on other channels, as toasts in the corner
 *  (and system notifications where allowed), whatever page is open. */
export function Toasts({ subscribe }: { subscribe: Subscribe }) {
  const [list, setList] = useState<Toast[]>([]);
  useEffect(() => subscribe((ev) => {
    const t = toastOf(ev as unknown as { type: string } & Record<string, unknown>);
    if (!t) return;
    setList((l) => pushToast(l, t));
    notify(t);
  }), [subscribe]);
  useEffect(() => {
    if (!list.length) return;
    const timer = setInterval(() => setList((l) => liveToasts(l, Date.now())), 1000);
    return () => clearInterval(timer);
  }, [list.length]);
  if (!list.length) return null;
  return (
    <div className="toasts" role="status" aria-live="polite">
      {list.map((t) => (
        <div key={t.key} className={`toast ${t.tone}`} data-testid="toast">
          <button className="link light close" aria-label="Dismiss" onClick={() => setList((l) => l.filter((x) => x.key !== t.key))}>×</button>
          <b>{t.title}</b>
          {t.text && <p>{t.text}</p>}
          {t.tone === "error" && <Link to="/alerts">See your alert channels</Link>}
        </div>
      ))}
    </div>
  );
}
