import { useState } from "react";
import { api, ApiError } from "../api/client";
import { Card, Empty, Field, Loading, fmt } from "../components/ui";
import { useLoad } from "../hooks";
import { Link } from "../router";

export function Assignments() {
  const list = useLoad(() => api.assignments());
  const strategies = useLoad(() => api.strategies());
  const markets = useLoad(() => api.markets());
  const traders = useLoad(() => api.traders());
  const [form, setForm] = useState({ strategy_id: "", market_id: "", timeframe: "1m", trader_id: "", allocation: "1000", params: "" });
  const [err, setErr] = useState<ApiError | null>(null);
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) => setForm({ ...form, [k]: e.target.value });
  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    try {
      const params: Record<string, number | string> = {};
      for (const p of form.params.split(",").map((x) => x.trim()).filter(Boolean)) {
        const [k, v] = p.split("=").map((x) => x.trim());
        params[k] = Number.isFinite(Number(v)) ? Number(v) : v;
      }
      await api.createAssignment({
        strategy_id: Number(form.strategy_id), market_id: Number(form.market_id), timeframe: form.timeframe,
        trader_id: form.trader_id ? Number(form.trader_id) : null, allocation: form.allocation, params,
      });
      list.reload();
    } catch (x) {
      setErr(x as ApiError);
    }
  };
  const sname = new Map((strategies.data?.items ?? []).map((s) => [s.id, s.name]));
  const mname = new Map((markets.data?.items ?? []).map((m) => [m.id, `${m.symbol}`]));
  const act = (p: Promise<unknown>) => p.then(list.reload).catch((x) => setErr(x));
  return (
    <div className="grid">
      <Card title="Assignments">
        {!list.data ? <Loading /> : list.data.items.length === 0 ? <Empty>No assignments yet.</Empty> : (
          <table>
            <thead><tr><th>Strategy</th><th>Market</th><th className="num">Allocation</th><th>Position</th><th>State</th><th /></tr></thead>
            <tbody>
              {list.data.items.map((a) => (
                <tr key={a.id}>
                  <td>{sname.get(a.strategy_id) ?? a.strategy_id}</td>
                  <td><Link to={`/markets/${a.market_id}?assignment=${a.id}`}>{mname.get(a.market_id)} {a.timeframe}</Link></td>
                  <td className="num">{fmt(a.allocation)}</td>
                  <td>{Number(a.position_qty) > 0 ? `${fmt(a.position_qty, 6)} held` : "flat"}</td>
                  <td>{a.enabled ? <span className="pill ok">running</span> : <span className="pill paused">paused</span>}
                    {a.paused_reason && <div className="reason" data-testid="paused-reason">{a.paused_reason}</div>}</td>
                  <td className="actions">
                    {a.enabled ? <button className="link" onClick={() => act(api.pause(a.id))}>pause</button> : <button className="link" onClick={() => act(api.resume(a.id))}>resume</button>}
                    <button className="link danger" onClick={() => act(api.deleteAssignment(a.id))}>delete</button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <Card title="Assign a strategy">
        <form onSubmit={create} className="stack">
          <Field label="Strategy" error={err?.forField("strategy_id")}>
            <select name="strategy" value={form.strategy_id} onChange={set("strategy_id")} required>
              <option value="">Choose…</option>
              {strategies.data?.items.map((s) => <option key={s.id} value={s.id}>{s.name}</option>)}
            </select>
          </Field>
          <Field label="Market" error={err?.forField("market_id")}>
            <select name="market" value={form.market_id} onChange={set("market_id")} required>
              <option value="">Choose…</option>
              {markets.data?.items.map((m) => <option key={m.id} value={m.id}>{m.exchange} · {m.symbol}</option>)}
            </select>
          </Field>
          <div className="row">
            <Field label="Timeframe" error={err?.forField("timeframe")}>
              <select name="timeframe" value={form.timeframe} onChange={set("timeframe")}>{["1m", "5m", "15m", "1h", "4h", "1d"].map((t) => <option key={t}>{t}</option>)}</select>
            </Field>
            <Field label="Allocation (quote)" error={err?.forField("allocation")}><input name="allocation" value={form.allocation} onChange={set("allocation")} /></Field>
          </div>
          <Field label="Account (optional: without one, decisions only)" error={err?.forField("trader_id")}>
            <select name="account" value={form.trader_id} onChange={set("trader_id")}>
              <option value="">No account</option>
              {traders.data?.items.map((t) => <option key={t.id} value={t.id}>{t.name} ({t.exchange})</option>)}
            </select>
          </Field>
          <Field label="Parameters" error={err?.forField("params")}><input name="assign-params" value={form.params} onChange={set("params")} placeholder="fast=10, slow=30" /></Field>
          {err && !err.errors.length && <div className="alert" role="alert">{err.message}</div>}
          <button className="primary" data-testid="create-assignment">Assign</button>
        </form>
      </Card>
    </div>
  );
}
