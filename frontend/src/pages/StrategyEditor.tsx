import { useEffect, useState } from "react";
import { api, ApiError, type Diagnostic } from "../api/client";
import { CodeEditor } from "../components/CodeEditor";
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
  const [diags, setDiags] = useState<Diagnostic[]>([]);
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
  const save = async () => {
    setErr(null);
    setBusy(true);
    try {
      const body = { name, description, code, params: parseParams(params) };
      const s = id ? await api.updateStrategy(id, body) : await api.createStrategy(body);
      setSaved(`Saved: version ${s.version}`);
      setClean(JSON.stringify([name, description, code, params]));
      setLeaveGuard(null);
      if (!id) navigate(`/strategies/${s.id}`, { replace: true, message: `Saved: version ${s.version}` });
    } catch (x) {
      const e = asApiError(x);
      setErr(e);
      const codeErrors = e.errors.filter((f) => f.field === "code").map((f) => ({ line: f.line ?? null, message: f.message }));
      if (codeErrors.length) setDiags(codeErrors);
    } finally {
      setBusy(false);
    }
  };
  if (loadErr) return <Alert>{loadErr.status === 404 ? "This strategy does not exist, or is not yours." : loadErr.message} <Link to="/strategies">All strategies</Link></Alert>;
  return (
    <>
      <PageHead title={id ? name || "Strategy" : "New strategy"}>
        {id && <Link className="button" to={`/backtests?strategy=${id}`}>Backtest</Link>}
        <button className="primary" onClick={save} disabled={busy || !loaded} data-testid="save-strategy" title="Ctrl+S">{busy ? "Saving…" : "Save"}</button>
      </PageHead>
      <div className="editor-page">
        <Card>
          <div className="row">
            <Field label="Name" error={err?.forField("name")}><input name="name" value={name} onChange={(e) => setName(e.target.value)} /></Field>
            <Field label="Default parameters" error={err?.forField("params")} hint="name=value, separated by commas: params.name in the code">
              <input name="params" value={params} onChange={(e) => setParams(e.target.value)} placeholder="fast=10, slow=30" spellCheck={false} />
            </Field>
          </div>
          <Field label="Description" error={err?.forField("description")}><input name="description" value={description} onChange={(e) => setDescription(e.target.value)} placeholder="What it does, in a sentence" /></Field>
          {loaded ? <CodeEditor value={code} onChange={(c) => { setCode(c); setSaved(null); }} onDiagnostics={setDiags} onSave={save} jump={jump} /> : <div className="editor"><div className="loading">Loading…</div></div>}
          <div className="diagnostics" data-testid="diagnostics" aria-live="polite">
            {diags.length === 0 ? <span className="ok-text">✓ No errors</span> : diags.map((d, i) => (
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
                      <button className="link" onClick={() => { setCode(v.code); setParams(formatParams(v.params)); setSaved(null); }}>v{v.version}</button>
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
