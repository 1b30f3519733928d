import { useState } from "react";
import { api, type Schemas } from "../api/client";
import { asApiError } from "../forms";
import { fmt } from "./ui";

type CloseOut = Schemas["CloseOut"];

/** What core did about a position, in a sentence. */
export function closeSummary(r: CloseOut): string {
  if (r.status === "placed") return `Selling ${fmt(r.amount, 8)} at the market (order ${r.client_order_id}).`;
  if (r.status === "closing") return `Already closing: order ${r.client_order_id} is on its way.`;
  return r.reason ?? r.status;
}

/** "Close position": core sells what the assignment holds at the market (asks first). */
export function CloseButton({ assignmentId, qty, symbol, onDone, className = "link danger", label = "close position" }:
  { assignmentId: number; qty: string; symbol?: string; onDone?: () => void; className?: string; label?: string }) {
  // Kept mounted while flat (the button hidden): what the last close did stays in view once the sell fills.
  const held = Number(qty) > 0;
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState<{ text: string; error: boolean } | null>(null);
  const close = async () => {
    const base = symbol?.split("/")[0] ?? "";
    if (!confirm(`Close position #${assignmentId}? ${fmt(qty, 8)} ${base} is sold at the market now, and its stop and target are cancelled.`)) return;
    setBusy(true);
    setMsg(null);
    try {
      setMsg({ text: closeSummary(await api.closePosition(assignmentId)), error: false });
      onDone?.();
    } catch (x) {
      setMsg({ text: asApiError(x).message, error: true });
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      {held && <button type="button" className={className} disabled={busy} onClick={close} data-testid="close-position"
        title="Sell what this assignment holds at the market now (it keeps running, or stays paused)">{busy ? "closing…" : label}</button>}
      {msg && <div className={`small ${msg.error ? "reason" : "muted"}`} role={msg.error ? "alert" : "status"} data-testid="close-result">{msg.text}</div>}
    </>
  );
}

/** "Flatten all": core closes every open position at the market (asks first). */
export function FlattenButton({ count, onDone }: { count: number; onDone?: () => void }) {
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState<{ text: string; error: boolean } | null>(null);
  const flatten = async () => {
    if (!confirm(`Close all ${count} open position${count === 1 ? "" : "s"} at the market now? The assignments keep running (use the kill switch to stop them too).`)) return;
    setBusy(true);
    setMsg(null);
    try {
      const r = await api.flatten();
      const placed = r.closed.filter((c) => c.status === "placed" || c.status === "closing").length;
      const refused = r.closed.filter((c) => c.status === "refused").map((c) => `#${c.assignment_id}: ${c.reason}`);
      setMsg({ text: `Closing ${placed} position${placed === 1 ? "" : "s"} at the market.${refused.length ? ` Not closed: ${refused.join("; ")}` : ""}`, error: refused.length > 0 });
      onDone?.();
    } catch (x) {
      setMsg({ text: asApiError(x).message, error: true });
    } finally {
      setBusy(false);
    }
  };
  return (
    <span className="flatten">
      {msg && <span className={`small ${msg.error ? "reason" : "muted"}`} role="status" data-testid="flatten-result">{msg.text}</span>}
      <button type="button" className="danger small" disabled={busy || count === 0} onClick={flatten} data-testid="flatten-all"
        title={count === 0 ? "No open position to close" : "Sell every open position at the market now"}>{busy ? "Closing…" : "Flatten all"}</button>
    </span>
  );
}

/** The kill switch's confirmation: pause everything and cancel open orders, and optionally flatten. */
export function KillDialog({ onCancel, onDone }: { onCancel: () => void; onDone: (r: Schemas["KillOut"]) => void }) {
  const [flatten, setFlatten] = useState(false);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const kill = async () => {
    setBusy(true);
    setErr(null);
    try {
      onDone(await api.kill(flatten));
    } catch (x) {
      setErr(asApiError(x).message);
      setBusy(false);
    }
  };
  return (
    <div className="modal-backdrop" onClick={(e) => e.target === e.currentTarget && onCancel()}>
      <div className="card modal" role="dialog" aria-modal="true" aria-labelledby="kill-title" data-testid="kill-dialog">
        <h2 id="kill-title">Stop everything?</h2>
        <p>Every assignment is paused and every open order is cancelled. Nothing trades until you release the kill switch and resume them.</p>
        <label className="check">
          <input type="checkbox" name="flatten" checked={flatten} onChange={(e) => setFlatten(e.target.checked)} />
          <span>Also close every open position at the market (flatten)</span>
        </label>
        {err && <div className="alert" role="alert">{err}</div>}
        <div className="row end">
          <button type="button" onClick={onCancel} disabled={busy}>Cancel</button>
          <button type="button" className="danger" onClick={kill} disabled={busy} data-testid="confirm-kill">{busy ? "Stopping…" : flatten ? "Stop and flatten" : "Stop everything"}</button>
        </div>
      </div>
    </div>
  );
}
