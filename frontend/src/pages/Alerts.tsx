import { Fragment, useEffect, useState } from "react";
import { askToNotify, notifyState, type NotifyState } from "../alerts";
import { api, type AlertChannel, type ApiError, type Schemas } from "../api/client";
import { Alert, Card, Field, Loader, PageHead, When } from "../components/ui";
import { asApiError } from "../forms";
import { useLoad } from "../hooks";
import type { StreamEvent } from "../stream";

type Kind = AlertChannel["kind"];
const KINDS: [Kind, string][] = [["webhook", "Webhook"], ["telegram", "Telegram"], ["email", "E-mail"], ["browser", "In the browser"]];
const ABOUT: Record<Kind, string> = {
  webhook: "A POST of JSON to your URL, signed with HMAC-SHA256 (the secret is shown once). Retried with back-off when it fails.",
  telegram: "A message from your bot to a chat: create the bot with @BotFather, send it a message, and give its token and the chat's id.",
  email: "An e-mail to your address, through this platform's mail server, or through yours (SMTP).",
  browser: "A notice in this app while it is open, and a system notification where you allow them.",
};
const SHORT: Record<string, string> = { fill: "fills", paused: "pauses", kill_switch: "the kill switch", loss_limit: "daily loss limits",
  exchange: "exchange disconnects", summary: "a daily summary" };
const STATUS: Record<AlertChannel["status"], [string, string]> = { ok: ["ok", "delivering"], failing: ["error", "failing"], new: ["", "nothing sent yet"] };

function Deliveries({ id, version }: { id: number; version: number }) {
  const log = useLoad(() => api.alertDeliveries(id), [id, version]);
  return (
    <Loader state={log} empty={(d) => d.items.length === 0 && "Nothing delivered yet: send a test."}>
      {(d) => (
        <table className="deliveries" data-testid="deliveries">
          <thead><tr><th>When</th><th>Alert</th><th>Outcome</th></tr></thead>
          <tbody>
            {d.items.map((x) => (
              <tr key={x.id}>
                <td className="muted nowrap"><When t={x.created_at} /></td>
                <td>{x.title}</td>
                <td><span className={`pill ${x.status === "sent" ? "ok" : "error"}`}>{x.status}</span>{x.attempts > 1 && <span className="muted small"> after {x.attempts} attempts</span>}{x.error && <div className="down small">{x.error}</div>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Loader>
  );
}

function NewChannel({ events, onCreated }: { events: Schemas["EventOut"][]; onCreated: (c: Schemas["ChannelCreated"]) => void }) {
  const [kind, setKind] = useState<Kind>("webhook");
  const [name, setName] = useState("");
  const [fields, setFields] = useState<Record<string, string>>({});
  const [chosen, setChosen] = useState<string[]>(() => events.map((e) => e.kind));
  const [ownSmtp, setOwnSmtp] = useState(false);
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [perm, setPerm] = useState<NotifyState>(notifyState());
  const f = (k: string) => fields[k] ?? "";
  const input = (k: string, label: string, props: React.InputHTMLAttributes<HTMLInputElement> = {}, hint?: string) => (
    <Field label={label} error={err?.forField(k)} hint={hint}>
      <input name={`alert-${k}`} value={f(k)} onChange={(e) => setFields({ ...fields, [k]: e.target.value })} autoComplete="off" spellCheck={false} {...props} />
    </Field>
  );
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    setBusy(true);
    try {
      const own = kind === "email" && ownSmtp;
      const body: Schemas["ChannelIn"] = {
        kind, name: name.trim() || null, events: chosen as Schemas["ChannelIn"]["events"],
        ...(kind === "webhook" ? { url: f("url").trim() } : {}),
        ...(kind === "telegram" ? { bot_token: f("bot_token").trim(), chat_id: f("chat_id").trim() } : {}),
        ...(kind === "email" ? { to: f("to").trim() } : {}),
        ...(own ? { smtp_host: f("smtp_host").trim(), smtp_port: f("smtp_port") ? Number(f("smtp_port")) : null, smtp_username: f("smtp_username").trim() || null,
                    smtp_password: f("smtp_password") || null, smtp_from: f("smtp_from").trim() || null } : {}),
      };
      onCreated(await api.createAlertChannel(body));
      setFields({});
      setName("");
    } catch (x) {
      setErr(asApiError(x));
    } finally {
      setBusy(false);
    }
  };
  const toggle = (k: string) => setChosen(chosen.includes(k) ? chosen.filter((x) => x !== k) : [...chosen, k]);
  return (
    <form onSubmit={submit} className="stack" noValidate data-testid="new-channel">
      <div className="segmented" role="tablist">
        {KINDS.map(([k, label]) => <button key={k} type="button" role="tab" aria-selected={kind === k} className={kind === k ? "on" : ""} onClick={() => { setKind(k); setErr(null); }}>{label}</button>)}
      </div>
      <p className="muted small">{ABOUT[kind]}</p>
      <Field label="Name" error={err?.forField("name")}><input name="alert-name" value={name} onChange={(e) => setName(e.target.value)} placeholder={KINDS.find(([k]) => k === kind)![1]} /></Field>
      {kind === "webhook" && input("url", "URL", { placeholder: "https://example.com/tradewind-hook" }, "Its path is kept secret: the app shows only the host.")}
      {kind === "telegram" && (
        <>
          {input("bot_token", "Bot token", { type: "password", autoComplete: "new-password" }, "Write-only: it is never shown again.")}
          {input("chat_id", "Chat id", { placeholder: "123456789, -100… for a group, or @channel" })}
        </>
      )}
      {kind === "email" && (
        <>
          {input("to", "Send to", { type: "email", placeholder: "you@example.com" })}
          <Field label="Mail server" error={err?.forField("smtp_host") && !ownSmtp ? err.forField("smtp_host") : undefined}>
            <span className="inline"><input type="checkbox" name="own-smtp" checked={ownSmtp} onChange={(e) => setOwnSmtp(e.target.checked)} /> use my own SMTP server</span>
          </Field>
          {ownSmtp && (
            <div className="row">
              {input("smtp_host", "SMTP host", { placeholder: "smtp.example.com" })}
              {input("smtp_port", "Port", { inputMode: "numeric", placeholder: "587" })}
              {input("smtp_username", "User name")}
              {input("smtp_password", "Password", { type: "password", autoComplete: "new-password" }, "Write-only.")}
              {input("smtp_from", "From", { placeholder: "alerts@example.com" })}
            </div>
          )}
        </>
      )}
      {kind === "browser" && (
        <p className="small">
          System notifications: <b data-testid="notify-state">{perm === "granted" ? "allowed" : perm === "denied" ? "blocked in this browser" : perm === "unsupported" ? "not supported here" : "not asked yet"}</b>
          {perm === "default" && <> · <button type="button" className="link" onClick={async () => setPerm(await askToNotify())}>Allow them</button></>}
        </p>
      )}
      <div className={`field${err?.forField("events") ? " has-error" : ""}`} role="group" aria-label="Tell me about">
        <span>Tell me about</span>
        <div className="checks alert-events" data-testid="alert-events">
          {events.map((e) => <label key={e.kind} className="check" title={e.label}><input type="checkbox" checked={chosen.includes(e.kind)} onChange={() => toggle(e.kind)} /> {SHORT[e.kind] ?? e.label}</label>)}
        </div>
        {err?.forField("events") && <small className="field-error" role="alert">{err.forField("events")}</small>}
      </div>
      {err?.general(["name", "url", "bot_token", "chat_id", "to", "events", "smtp_host", "smtp_port", "smtp_username", "smtp_password", "smtp_from"]) && <Alert>{err.message}</Alert>}
      <button className="primary" data-testid="add-channel" disabled={busy}>{busy ? "Adding…" : "Add channel"}</button>
    </form>
  );
}

type Subscribe = (f: (ev: StreamEvent) => void) => () => void;

export function Alerts({ subscribe }: { subscribe?: Subscribe }) {
  const list = useLoad(() => api.alertChannels());
  const events = useLoad(() => api.alertEvents());
  const [secret, setSecret] = useState<{ name: string; secret: string } | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [version, setVersion] = useState(0);
  const [note, setNote] = useState<{ id: number; ok: boolean; text: string } | null>(null);
  const [listErr, setListErr] = useState<ApiError | null>(null);
  const label = (k: string) => SHORT[k] ?? k;
  const refresh = () => { list.reload(); setVersion((v) => v + 1); };
  useEffect(() => subscribe?.((ev) => {
    // an alert delivered (or not) while this page is open: its outcome is stored a moment later
    if (ev.type === "alert" || ev.type === "alert_failed") setTimeout(refresh, 1200);
  }), [subscribe]); // eslint-disable-line react-hooks/exhaustive-deps
  const act = async (f: () => Promise<unknown>) => {
    setListErr(null);
    try { await f(); } catch (x) { setListErr(asApiError(x)); }
    refresh();
  };
  const test = (c: AlertChannel) => act(async () => {
    setNote({ id: c.id, ok: true, text: "Sending a test…" });
    const r = await api.testAlertChannel(c.id);
    setNote({ id: c.id, ok: r.status === "sent", text: r.status === "sent" ? "Test alert sent." : `Test failed: ${r.error ?? "no answer"}` });
  });
  const remove = (c: AlertChannel) => { if (confirm(`Delete the alert channel "${c.name}"?`)) act(() => api.deleteAlertChannel(c.id)); };
  const rotate = (c: AlertChannel) => act(async () => {
    if (!confirm(`Make a new signing secret for "${c.name}"? The old one stops verifying at once.`)) return;
    setSecret({ name: c.name, secret: (await api.newWebhookSecret(c.id)).secret });
  });
  return (
    <>
      <PageHead title="Alerts" />
      <div className="grid wide-left">
        <div>
          {secret && (
            <div className="notice secret" role="status" data-testid="webhook-secret">
              <b>Signing secret of “{secret.name}”: shown this once, copy it now.</b>
              <code className="mono">{secret.secret}</code>
              <span className="small">Each delivery carries <code>X-Tradewind-Signature: sha256=HMAC-SHA256(secret, timestamp + "." + body)</code> and <code>X-Tradewind-Timestamp</code>; docs/alerts.md shows how to check them.</span>
              <button className="link" onClick={() => setSecret(null)}>I have copied it</button>
            </div>
          )}
          <Card title="Your alert channels">
            {listErr && <Alert>{listErr.message}</Alert>}
            <Loader state={list} empty={(d) => d.items.length === 0 && "No channels yet: add one to hear about fills, pauses, the kill switch and more."}>
              {(d) => (
                <div className="scroll-x">
                  <table>
                    <thead><tr><th>Channel</th><th>Events</th><th>Status</th><th /></tr></thead>
                    <tbody data-testid="alert-channels">
                      {d.items.map((c) => (
                        <Fragment key={c.id}>
                          <tr className={open === c.id ? "selected" : ""}>
                            <td><b>{c.name}</b> <span className="pill">{KINDS.find(([k]) => k === c.kind)?.[1]}</span>{!c.enabled && <span className="pill paused">off</span>}<div className="muted small mono">{c.target}{c.bot_token_masked ? ` · bot ${c.bot_token_masked}` : ""}</div></td>
                            <td className="small">{c.events.map(label).join(", ")}</td>
                            <td data-testid="channel-status">
                              <span className={`pill ${STATUS[c.status][0]}`}>{STATUS[c.status][1]}</span>
                              <div className="muted small">{c.delivered} sent{c.failed ? `, ${c.failed} failed` : ""}{c.dropped ? `, ${c.dropped} dropped` : ""}</div>
                              {c.status === "failing" && c.last_error && <div className="down small" data-testid="channel-error">{c.last_error}{c.last_failure_at && <> · <When t={c.last_failure_at} /></>}</div>}
                              {note?.id === c.id && <div className={`small ${note.ok ? "up" : "down"}`} role="status" data-testid="test-result">{note.text}</div>}
                            </td>
                            <td className="actions stacked">
                              <button className="link" onClick={() => test(c)} data-testid="test-channel">send a test</button>
                              <button className="link" onClick={() => act(() => api.updateAlertChannel(c.id, { enabled: !c.enabled }))}>{c.enabled ? "turn off" : "turn on"}</button>
                              <button className="link" onClick={() => setOpen(open === c.id ? null : c.id)} aria-expanded={open === c.id}>deliveries</button>
                              {c.kind === "webhook" && <button className="link" onClick={() => rotate(c)}>new secret</button>}
                              <button className="link danger" onClick={() => remove(c)}>delete</button>
                            </td>
                          </tr>
                          {open === c.id && <tr className="detail"><td colSpan={4}><Deliveries id={c.id} version={version} /></td></tr>}
                        </Fragment>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
            </Loader>
          </Card>
        </div>
        <Card title="Add a channel">
          <Loader state={events}>
            {(ev) => <NewChannel events={ev} onCreated={(c) => { if (c.secret) setSecret({ name: c.name, secret: c.secret }); refresh(); }} />}
          </Loader>
        </Card>
      </div>
    </>
  );
}
