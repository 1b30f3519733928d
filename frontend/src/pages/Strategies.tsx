import { useEffect, useState } from "react";
import { api, ApiError, type Diagnostic } from "../api/client";
import { CodeEditor } from "../components/CodeEditor";
import { Card, Empty, Field, Loading, time } from "../components/ui";
import { useLoad } from "../hooks";
import { Link, navigate } from "../router";

const TEMPLATE = `-- c.open, c.high, c.low, c.close, c.volume, c.time: arrays, oldest first
function decide(c, params)
  local fast = ta.sma(c.close, params.fast or 10)
  local slow = ta.sma(c.close, params.slow or 30)
  if fast[#fast] > slow[#slow] then
    return "long"
  end
  return "short"   -- "long" | "short" | "neutral"
end
`;

export function StrategyList() {
  const list = useLoad(() => api.strategies());
  return (
    <Card title="Strategies" actions={<Link className="button primary" to="/strategies/new">New strategy</Link>}>
      {!list.data ? <Loading /> : list.data.items.length === 0 ? <Empty>No strategies yet. Start from the SMA-crossover template.</Empty> : (
        <table>
          <thead><tr><th>Name</th><th>Version</th><th>Updated</th></tr></thead>
          <tbody>
            {list.data.items.map((s) => (
              <tr key={s.id}><td><Link to={`/strategies/${s.id}`}>{s.name}</Link></td><td>v{s.version}</td><td className="muted">{time(s.updated_at)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

function parseParams(text: string): Record<string, number | string | boolean> {
  const out: Record<string, number | string | boolean> = {};
  for (const part of text.split(/[\n,]/)) {
    const [k, v] = part.split("=").map((x) => x?.trim());
    if (!k) continue;
    if (v === undefined) throw new Error(`write parameters as name=value (got "${part.trim()}")`);
    out[k] = v === "true" ? true : v === "false" ? false : Number.isFinite(Number(v)) && v !== "" ? Number(v) : v;
  }
  return out;
}

export function StrategyEditor({ id }: { id: number | null }) {
  const [name, setName] = useState("SMA crossover");
  const [code, setCode] = useState(TEMPLATE);
  const [params, setParams] = useState("fast=10, slow=30");
  const [diags, setDiags] = useState<Diagnostic[]>([]);
  const [err, setErr] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const versions = useLoad(() => (id ? api.versions(id) : Promise.resolve([])), [id, saved]);
  useEffect(() => {
    if (!id) return;
    api.strategy(id).then((s) => {
      setName(s.name);
      setCode(s.code);
      setParams(Object.entries(s.params).map(([k, v]) => `${k}=${v}`).join(", "));
    });
  }, [id]);
  const save = async () => {
    setErr(null);
    try {
      const body = { name, code, params: parseParams(params) };
      const s = id ? await api.updateStrategy(id, body) : await api.createStrategy(body);
      setSaved(`Saved version ${s.version}`);
      if (!id) navigate(`/strategies/${s.id}`);
    } catch (x) {
      setErr(x instanceof ApiError ? x : new ApiError(0, (x as Error).message, [{ field: "params", message: (x as Error).message }]));
    }
  };
  return (
    <div className="editor-page">
      <Card title={id ? "Edit strategy" : "New strategy"} actions={<button className="primary" onClick={save} data-testid="save-strategy">Save</button>}>
        <div className="row">
          <Field label="Name" error={err?.forField("name")}><input name="name" value={name} onChange={(e) => setName(e.target.value)} /></Field>
          <Field label="Default parameters" error={err?.forField("params")}><input name="params" value={params} onChange={(e) => setParams(e.target.value)} placeholder="fast=10, slow=30" /></Field>
        </div>
        <CodeEditor value={code} onChange={(c) => { setCode(c); setSaved(null); }} onDiagnostics={setDiags} />
        <div className="diagnostics" data-testid="diagnostics">
          {diags.length === 0 ? <span className="ok-text">No errors</span> : diags.map((d, i) => (
            <div key={i} className="diag">{d.line ? <b>Line {d.line}:</b> : null} {d.message}</div>
          ))}
        </div>
        {err && !err.forField("name") && !err.forField("params") && <div className="alert" role="alert">{err.message}</div>}
        {saved && <div className="notice">{saved}</div>}
      </Card>
      {id && (
        <Card title="Versions">
          {!versions.data ? <Loading /> : (
            <ul className="versions">{versions.data.map((v) => (
              <li key={v.version}><button className="link" onClick={() => setCode(v.code)}>v{v.version}</button> <span className="muted">{time(v.created_at)}</span></li>
            ))}</ul>
          )}
        </Card>
      )}
    </div>
  );
}
