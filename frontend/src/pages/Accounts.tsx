import { useState } from "react";
import { api, ApiError } from "../api/client";
import { Card, Empty, Field, Loading, fmt } from "../components/ui";
import { useLoad } from "../hooks";

export function Accounts() {
  const list = useLoad(() => api.traders());
  const [name, setName] = useState("Paper account");
  const [paper, setPaper] = useState(true);
  const [exchange, setExchange] = useState("sim");
  const [key, setKey] = useState("");
  const [secret, setSecret] = useState("");
  const [err, setErr] = useState<ApiError | null>(null);
  const [balances, setBalances] = useState<Record<number, Record<string, string>>>({});
  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    try {
      await api.createTrader(paper ? { name, exchange: "sim", paper: true } : { name, exchange, paper: false, api_key: key, api_secret: secret });
      setKey("");
      setSecret("");
      list.reload();
    } catch (x) {
      setErr(x as ApiError);
    }
  };
  return (
    <div className="grid">
      <Card title="Trading accounts">
        {!list.data ? <Loading /> : list.data.items.length === 0 ? <Empty>No accounts yet. A paper account trades the simulated markets with 10,000 USD.</Empty> : (
          <table>
            <thead><tr><th>Name</th><th>Exchange</th><th>Key</th><th>Balances</th><th /></tr></thead>
            <tbody>
              {list.data.items.map((t) => (
                <tr key={t.id}>
                  <td>{t.name} {t.paper && <span className="pill">paper</span>}</td>
                  <td>{t.exchange}</td>
                  <td className="mono">{t.api_key_masked ?? "—"}</td>
                  <td>{balances[t.id] ? Object.entries(balances[t.id]).map(([a, v]) => `${fmt(v, 6)} ${a}`).join(", ") :
                    <button className="link" onClick={() => api.balances(t.id).then((b) => setBalances({ ...balances, [t.id]: b.balances })).catch((x) => setErr(x))}>show</button>}</td>
                  <td><button className="link danger" onClick={() => api.deleteTrader(t.id).then(list.reload)}>delete</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <Card title="Add an account">
        <form onSubmit={create} className="stack">
          <div className="segmented">
            <button type="button" className={paper ? "on" : ""} onClick={() => setPaper(true)}>Paper</button>
            <button type="button" className={!paper ? "on" : ""} onClick={() => setPaper(false)}>Exchange key</button>
          </div>
          <Field label="Name" error={err?.forField("name")}><input name="trader-name" value={name} onChange={(e) => setName(e.target.value)} /></Field>
          {!paper && (
            <>
              <Field label="Exchange (bitfinex or a ccxt id)" error={err?.forField("exchange")}><input value={exchange} onChange={(e) => setExchange(e.target.value)} /></Field>
              <Field label="API key" error={err?.forField("api_key")}><input value={key} onChange={(e) => setKey(e.target.value)} autoComplete="off" /></Field>
              <Field label="API secret (write-only: never shown again)" error={err?.forField("api_secret")}><input type="password" value={secret} onChange={(e) => setSecret(e.target.value)} autoComplete="off" /></Field>
            </>
          )}
          {err && !err.errors.length && <div className="alert" role="alert">{err.message}</div>}
          <button className="primary" data-testid="create-account">Create account</button>
        </form>
      </Card>
    </div>
  );
}
