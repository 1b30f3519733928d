import { Fragment, useState } from "react";
import { LIMITS, accountForm, accountPatch, type AccountForm } from "../accounts";
import { api, type ApiError, type Trader } from "../api/client";
import { Alert, Card, Field, Loader, PageHead, When, fmt } from "../components/ui";
import { asApiError, assertValid, checkAmount } from "../forms";
import { useLoad } from "../hooks";
import { Link } from "../router";

function Balances({ trader, version }: { trader: Trader; version: number }) {
  const b = useLoad(() => api.balances(trader.id), [trader.id, version]);
  if (b.error) return <span className="down small" title={b.error.message}>unavailable</span>;
  if (!b.data) return <span className="muted">…</span>;
  const entries = Object.entries(b.data.balances).filter(([, v]) => Number(v) !== 0);
  return entries.length ? <span className="balances">{entries.map(([a, v]) => <span key={a}><b>{fmt(v, a === "USD" || a === "USDT" ? 2 : 6)}</b> {a}</span>)}</span> : <span className="muted">empty</span>;
}

/** What an audit action means, for a person. */
const ACTIONS: Record<string, string> = {
  "account.created": "Account created", login: "Logged in", "login.failed": "Failed login", logout: "Logged out",
  "trader.created": "Trading account added", "trader.key_changed": "API key changed", "trader.deleted": "Trading account deleted",
  "trader.key_refused": "API key refused by the exchange", "trader.limits_changed": "Risk limits changed",
  "trader.key_reencrypted": "API key re-encrypted", "killswitch.on": "Kill switch on", "killswitch.off": "Kill switch released",
  "position.close": "Close position asked", "positions.flatten": "Flatten all asked", "trader.reset": "Paper account reset",
};

function SecurityLog({ version }: { version: number }) {
  const log = useLoad(() => api.audit(), [version]);
  return (
    <Card title="Security log">
      <Loader state={log} empty={(d) => d.items.length === 0 && "Nothing yet."}>
        {(d) => (
          <table>
            <thead><tr><th>When</th><th>What</th><th className="hide-sm">From</th></tr></thead>
            <tbody data-testid="audit">
              {d.items.map((e) => (
                <tr key={e.id}>
                  <td className="muted nowrap"><When t={e.created_at} /></td>
                  <td className={e.action === "login.failed" ? "down" : ""}>{ACTIONS[e.action] ?? e.action}</td>
                  <td className="muted mono hide-sm">{e.address ?? "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Loader>
    </Card>
  );
}

/** An account's name, risk limits and (an exchange account's) key, edited in place under its row. */
function EditAccount({ trader, onDone, onCancel }: { trader: Trader; onDone: (t: Trader) => void; onCancel: () => void }) {
  const [form, setForm] = useState<AccountForm>(() => accountForm(trader));
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const set = (patch: Partial<AccountForm>) => { setForm({ ...form, ...patch }); setNote(null); };
  const save = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    try {
      const body = accountPatch(trader, form);
      if (!Object.keys(body).length) { setNote("Nothing changed."); return; }
      setBusy(true);
      onDone(await api.updateTrader(trader.id, body));
    } catch (x) {
      setErr(asApiError(x));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="stack edit-account" onSubmit={save} noValidate data-testid="edit-account">
      <div className="row">
        <Field label="Name" error={err?.forField("name")}><input name="edit-name" value={form.name} onChange={(e) => set({ name: e.target.value })} /></Field>
        {LIMITS.map(([f, label]) => (
          <Field key={f} label={label} error={err?.forField(f)}>
            <input name={`edit-${f}`} inputMode="decimal" value={form.limits[f]} onChange={(e) => set({ limits: { ...form.limits, [f]: e.target.value } })} placeholder="no limit" />
          </Field>
        ))}
      </div>
      {!trader.paper && (
        <div className="row">
          <Field label="New API key" error={err?.forField("api_key")} hint={`Empty: keep ${trader.api_key_masked ?? "the current key"}. A new key is checked with the exchange first.`}>
            <input name="edit-api-key" value={form.apiKey} onChange={(e) => set({ apiKey: e.target.value })} autoComplete="off" spellCheck={false} />
          </Field>
          <Field label="New API secret" error={err?.forField("api_secret")} hint="Write-only: it is never shown again.">
            <input name="edit-api-secret" type="password" value={form.apiSecret} onChange={(e) => set({ apiSecret: e.target.value })} autoComplete="new-password" />
          </Field>
        </div>
      )}
      {err?.general(["name", "api_key", "api_secret", ...LIMITS.map(([f]) => f)]) && <Alert>{err.message}</Alert>}
      <div className="row end">
        {note && <span className="muted" role="status">{note}</span>}
        <button type="button" onClick={onCancel}>Cancel</button>
        <button className="primary" data-testid="save-account" disabled={busy}>{busy ? (form.apiKey ? "Checking the key…" : "Saving…") : "Save"}</button>
      </div>
    </form>
  );
}

export function Accounts() {
  const list = useLoad(() => api.traders());
  const [name, setName] = useState("Paper account");
  const [paper, setPaper] = useState(true);
  const [exchange, setExchange] = useState("bitfinex");
  const [sandbox, setSandbox] = useState(false);
  const [key, setKey] = useState("");
  const [secret, setSecret] = useState("");
  const [limits, setLimits] = useState<Record<string, string>>({});
  const [err, setErr] = useState<ApiError | null>(null);
  const [listErr, setListErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [version, setVersion] = useState(0);
  const [editing, setEditing] = useState<number | null>(null);
  const [edited, setEdited] = useState<string | null>(null);
  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    setBusy(true);
    try {
      assertValid(LIMITS.map(([f]) => checkAmount(f, limits[f] ?? "", { optional: true })));
      const risk = Object.fromEntries(LIMITS.map(([f]) => [f, limits[f]?.trim() || null]));
      await api.createTrader(paper ? { name, exchange: "sim", paper: true, ...risk } : { name, exchange, paper: false, sandbox, api_key: key, api_secret: secret, ...risk });
      setKey("");
      setSecret("");
      list.reload();
      setVersion((v) => v + 1);
    } catch (x) {
      setErr(asApiError(x));
    } finally {
      setBusy(false);
    }
  };
  const reset = (t: Trader) => {
    if (!confirm(`Reset "${t.name}" to its starting cash? Whatever it holds goes; its trades stay listed. Assignments on it must be flat, with no open orders.`)) return;
    setListErr(null);
    api.resetTrader(t.id).then((r) => {
      setEdited(`"${t.name}" is back to ${Object.entries(r.balances).map(([a, v]) => `${fmt(v, 2)} ${a}`).join(", ")}.`);
      setVersion((v) => v + 1);
    }, (x) => setListErr(asApiError(x)));
  };
  const remove = (t: Trader) => {
    if (!confirm(`Delete the account "${t.name}"? Assignments that trade with it stop trading.`)) return;
    api.deleteTrader(t.id).then(() => { list.reload(); setVersion((v) => v + 1); }, (x) => setListErr(asApiError(x)));
  };
  return (
    <>
      <PageHead title="Trading accounts" />
      <div className="grid wide-left">
        <div>
          <Card title="Your accounts">
            {listErr && <Alert>{listErr.message}</Alert>}
            {edited && <div className="notice" role="status">{edited}</div>}
            <Loader state={list} empty={(d) => d.items.length === 0 && "No accounts yet. A paper account trades the simulated markets with 10,000 USD."}>
              {(d) => (
                <div className="scroll-x">
                  <table>
                    <thead><tr><th>Name</th><th>Exchange</th><th>API key</th><th>Balances</th><th /></tr></thead>
                    <tbody data-testid="accounts">
                      {d.items.map((t) => (
                        <Fragment key={t.id}>
                          <tr className={editing === t.id ? "selected" : ""}>
                            <td>{t.name} {t.paper ? <span className="pill">paper</span> : t.sandbox ? <span className="pill">sandbox</span> : <span className="pill live">live</span>}</td>
                            <td>{t.exchange}</td>
                            <td className="mono">{t.api_key_masked ?? <span className="muted">—</span>}</td>
                            <td><Balances trader={t} version={version} /></td>
                            <td className="actions">
                              <Link to={`/trades?trader=${t.id}`} className="link">trades</Link>
                              <button className="link" onClick={() => { setEditing(editing === t.id ? null : t.id); setEdited(null); }} aria-expanded={editing === t.id}>edit</button>
                              {t.paper && <button className="link" data-testid="reset-account" onClick={() => reset(t)} title="Back to the starting cash of a paper account">reset</button>}
                              <button className="link danger" onClick={() => remove(t)}>delete</button>
                            </td>
                          </tr>
                          {editing === t.id && (
                            <tr className="detail"><td colSpan={5}>
                              <EditAccount trader={t} onCancel={() => setEditing(null)} onDone={(saved) => {
                                setEditing(null);
                                setEdited(`Saved "${saved.name}".`);
                                list.setData({ ...d, items: d.items.map((x) => (x.id === saved.id ? saved : x)) });
                                setVersion((v) => v + 1);
                              }} />
                            </td></tr>
                          )}
                        </Fragment>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
            </Loader>
          </Card>
          <SecurityLog version={version} />
        </div>
        <Card title="Add an account">
          <form onSubmit={create} className="stack" noValidate>
            <div className="segmented" role="tablist">
              <button type="button" role="tab" aria-selected={paper} className={paper ? "on" : ""} onClick={() => { setPaper(true); setName("Paper account"); }}>Paper</button>
              <button type="button" role="tab" aria-selected={!paper} className={!paper ? "on" : ""} onClick={() => { setPaper(false); setName("Exchange account"); }}>Exchange key</button>
            </div>
            <p className="muted small">{paper ? "Trades the simulated exchange with 10,000 USD of play money." : "Your key is checked with the exchange, stored encrypted, and never shown again: only its last four characters."}</p>
            <Field label="Name" error={err?.forField("name")}><input name="trader-name" value={name} onChange={(e) => setName(e.target.value)} /></Field>
            {!paper && (
              <>
                <Field label="Exchange" error={err?.forField("exchange")} hint="bitfinex, or any exchange id ccxt knows (binance, kraken, …)"><input name="exchange" value={exchange} onChange={(e) => setExchange(e.target.value)} /></Field>
                <Field label="API key" error={err?.forField("api_key")}><input name="api-key" value={key} onChange={(e) => setKey(e.target.value)} autoComplete="off" spellCheck={false} /></Field>
                <Field label="API secret" error={err?.forField("api_secret")} hint="Write-only: it is never shown again."><input name="api-secret" type="password" value={secret} onChange={(e) => setSecret(e.target.value)} autoComplete="new-password" /></Field>
                <Field label="Testnet" error={err?.forField("sandbox")} hint="Trade the exchange's sandbox/testnet with a testnet key (ccxt exchanges that have one).">
                  <span className="inline"><input name="sandbox" type="checkbox" checked={sandbox} onChange={(e) => setSandbox(e.target.checked)} /> use the testnet</span>
                </Field>
              </>
            )}
            <details open={LIMITS.some(([f]) => err?.forField(f)) || undefined}>
              <summary>Risk limits (optional)</summary>
              {LIMITS.map(([f, label]) => (
                <Field key={f} label={label} error={err?.forField(f)}>
                  <input name={f} inputMode="decimal" value={limits[f] ?? ""} onChange={(e) => setLimits({ ...limits, [f]: e.target.value })} placeholder="no limit" />
                </Field>
              ))}
            </details>
            {err?.general(["name", "exchange", "api_key", "api_secret", ...LIMITS.map(([f]) => f)]) && <Alert>{err.message}</Alert>}
            <button className="primary" data-testid="create-account" disabled={busy}>{busy ? "Creating…" : "Create account"}</button>
          </form>
        </Card>
      </div>
    </>
  );
}
