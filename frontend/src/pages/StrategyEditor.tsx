import { useEffect, useRef, useState } from "react";
import { api, ApiError } from "../api/client";
import { CHECKING, codeErrors, saveFailure, type Check } from "../check";
import { CodeEditor } from "../components/CodeEditor";
import { DraftBacktest, VersionBanner } from "../components/StrategyVersions";
import { Alert, Card, Field, Loader, PageHead, time } from "../components/ui";
import { asApiError, formatParams, parseParams } from "../forms";
import { useLoad } from "../hooks";
import { Link, navigate, setLeaveGuard, takeFlash } from "../router";

const TEMPLATE = `-- c.open, c.high, c.low, c.close, c.volume, c.time: arrays, oldest first
function decide(c, params)
  local fast = ta.sma(c.close, params.fast or 10)
  local slow = ta.sma(c.close, params.slow or 30)
  if fast[#fast] > slow[#slow] then
    return "long"
  end
  return "short"   -- "long" | "short" | "neutral" (keep the position)
end
`;


export function StrategyEditor({ id }: { id: number | null }) {
  const [name, setName] = useState("SMA crossover");
  const [description, setDescription] = useState("");
  const [code, setCode] = useState(TEMPLATE);
  const [params, setParams] = useState("fast=10, slow=30");
  const [loaded, setLoaded] = useState(id === null);
  const [loadErr, setLoadErr] = useState<ApiError | null>(null);
  const [check, setCheck] = useState<Check>(CHECKING);
  const [notSaved, setNotSaved] = useState<string | null>(null); // why the last save failed, beside Save
  const [err, setErr] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState<string | null>(takeFlash);
  const [busy, setBusy] = useState(false);
  const [jump, setJump] = useState<{ line: number; n: number } | null>(null);
  // What was last loaded or saved: anything else is unsaved, and leaving asks first.
  const snapshot = JSON.stringify([name, description, code, params]);
  const [clean, setClean] = useState<string | null>(() => (id === null ? snapshot : null)); // null: not loaded yet
  const dirty = clean !== null && snapshot !== clean;
  useEffect(() => {
    if (!dirty) return;
    const onUnload = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", onUnload);
    setLeaveGuard(() => confirm("Leave without saving your changes?"));
    return () => { window.removeEventListener("beforeunload", onUnload); setLeaveGuard(null); };
  }, [dirty]);
  const versions = useLoad(() => (id ? api.versions(id) : Promise.resolve([])), [id, saved]);
  // The version opened from the history (or ?version=N, a pinned assignment's link) while it is not saved anew
  const [viewing, setViewing] = useState<number | null>(null);
  const openVersion = (v: { version: number; code: string; params: Record<string, unknown> }) => {
    setCode(v.code); setParams(formatParams(v.params)); setSaved(null); setViewing(v.version);
  };
  const asked = useRef(Number(new URLSearchParams(location.search).get("version")) || null);
  useEffect(() => {
    const v = asked.current && loaded ? versions.data?.find((x) => x.version === asked.current) : undefined;
    if (v) { asked.current = null; if (v !== versions.data?.[0]) openVersion(v); }
  }, [loaded, versions.data]); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(() => {
    if (!id) return;
    api.strategy(id).then((s) => {
      setName(s.name);
      setDescription(s.description ?? "");
      setCode(s.code);
      setParams(formatParams(s.params));
      setClean(JSON.stringify([s.name, s.description ?? "", s.code, formatParams(s.params)]));
      setLoaded(true);
    }, (x) => setLoadErr(asApiError(x)));
  }, [id]);
  useEffect(() => setNotSaved(null), [snapshot]); // edited since: the reason given may no longer hold
  const save = async () => {
    setErr(null);
    setNotSaved(null);
    setBusy(true);
    try {
      const body = { name, description, code, params: parseParams(params) };
      const s = id ? await api.updateStrategy(id, body) : await api.createStrategy(body);
      setSaved(`Saved: version ${s.version}`);
      setViewing(null);
      setClean(JSON.stringify([name, description, code, params]));
      setLeaveGuard(null);
      if (!id) navigate(`/strategies/${s.id}`, { replace: true, message: `Saved: version ${s.version}` });
    } catch (x) {
      const e = asApiError(x);
      setErr(e);
      setNotSaved(saveFailure(e));
      const errors = codeErrors(e);
      if (errors.length) {
        setCheck({ state: "errors", errors });
        const line = errors.find((d) => d.line)?.line;
        if (line) setJump({ line, n: Date.now() });
      }
    } finally {
      setBusy(false);
    }
  };
  if (loadErr) return <Alert>{loadErr.status === 404 ? "This strategy does not exist, or is not yours." : loadErr.message} <Link to="/strategies">All strategies</Link></Alert>;
  return (
    <>
      <PageHead title={id ? name || "Strategy" : "New strategy"}>
        {id && <Link className="button" to={`/backtests?strategy=${id}`}>Backtest</Link>}
        {id && <DraftBacktest strategyId={id} code={code} params={params} />}
        {notSaved && <span className="save-error" role="alert" data-testid="save-error">{notSaved}</span>}
        <button className="primary" onClick={save} disabled={busy || !loaded} data-testid="save-strategy" title="Ctrl+S">{busy ? "Saving…" : "Save"}</button>
      </PageHead>
      {id && <VersionBanner strategyId={id} viewing={viewing} latest={versions.data?.[0]?.version ?? null} onLatest={() => versions.data?.[0] && openVersion(versions.data[0])} />}
      <div className="editor-page">
        <Card>
          <div className="row">
            <Field label="Name" error={err?.forField("name")}><input name="name" value={name} onChange={(e) => setName(e.target.value)} /></Field>
            <Field label="Default parameters" error={err?.forField("params")} hint="name=value, separated by commas: params.name in the code">
              <input name="params" value={params} onChange={(e) => setParams(e.target.value)} placeholder="fast=10, slow=30" spellCheck={false} />
            </Field>
          </div>
          <Field label="Description" error={err?.forField("description")}><input name="description" value={description} onChange={(e) => setDescription(e.target.value)} placeholder="What it does, in a sentence" /></Field>
          {loaded ? <CodeEditor value={code} onChange={(c) => { setCode(c); setSaved(null); }} onCheck={setCheck} onSave={save} jump={jump} /> : <div className="editor"><div className="loading">Loading…</div></div>}
          <div className="diagnostics" data-testid="diagnostics" aria-live="polite">
            {check.state === "checking" ? <span className="muted">Checking…</span>
              : check.state === "ok" ? <span className="ok-text">✓ No errors</span>
              : check.state === "unchecked" ? <span className="warn-text">Not checked: {check.reason}</span>
              : check.errors.map((d, i) => (
                <button key={i} type="button" className="diag" onClick={() => d.line && setJump({ line: d.line, n: Date.now() })}>
                  {d.line ? <b>Line {d.line}:</b> : null} {d.message}
                </button>
              ))}
          </div>
          {err?.general(["name", "params", "description", "code"]) && <Alert>{err.message}</Alert>}
          {saved && <div className="notice" role="status">{saved}</div>}
        </Card>
        <div className="side">
          <Card title="How it works">
            <p className="small">
              <code>decide(c, params)</code> runs on every closed candle and returns <code>"long"</code>, <code>"short"</code> or <code>"neutral"</code>.
              Candles are arrays, oldest first; indicators come from <code>ta</code> (<code>ta.sma</code>, <code>ta.ema</code>, <code>ta.rsi</code>, …).
              Errors are checked by the same sandbox that runs it.
            </p>
          </Card>
          {id && (
            <Card title="Versions">
              <Loader state={versions} empty={(d) => d.length === 0 && "No versions yet."}>
                {(d) => (
                  <ul className="versions">{d.map((v, i) => (
                    <li key={v.version}>
                      <button className="link" onClick={() => openVersion(v)}>v{v.version}</button>
                      {i === 0 && <span className="pill">current</span>}
                      <span className="muted small">{time(v.created_at)}</span>
                    </li>
                  ))}</ul>
                )}
              </Loader>
              <p className="muted small">Open a version to see it in the editor; save to make it the current one.</p>
            </Card>
          )}
        </div>
      </div>
    </>
  );
}
