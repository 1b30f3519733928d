import { useState } from "react";
import { api, ApiError } from "../api/client";
import { Alert, Card, Loader, PageHead, time } from "../components/ui";
import { asApiError, formatParams } from "../forms";
import { useLoad } from "../hooks";
import { Link } from "../router";

export function StrategyList() {
  const list = useLoad(() => api.strategies());
  const [err, setErr] = useState<ApiError | null>(null);
  const remove = (id: number, name: string) => {
    if (!confirm(`Delete "${name}"? Its assignments stop and are deleted too.`)) return;
    api.deleteStrategy(id).then(list.reload, (x) => setErr(asApiError(x)));
  };
  return (
    <>
      <PageHead title="Strategies"><Link className="button primary" to="/strategies/new">New strategy</Link></PageHead>
      <Card>
        {err && <Alert>{err.message}</Alert>}
        <Loader state={list} empty={(d) => d.items.length === 0 && <>No strategies yet. <Link to="/strategies/new">Start from the SMA-crossover template</Link>.</>}>
          {(d) => (
            <table>
              <thead><tr><th>Name</th><th>Version</th><th className="hide-sm">Parameters</th><th className="hide-sm">Updated</th><th /></tr></thead>
              <tbody>
                {d.items.map((s) => (
                  <tr key={s.id}>
                    <td><Link to={`/strategies/${s.id}`}>{s.name}</Link>{s.description && <div className="muted small">{s.description}</div>}</td>
                    <td>v{s.version}</td>
                    <td className="mono small hide-sm">{formatParams(s.params) || "—"}</td>
                    <td className="muted hide-sm">{time(s.updated_at)}</td>
                    <td className="actions">
                      <Link to={`/backtests?strategy=${s.id}`}>backtest</Link>
                      <button className="link danger" onClick={() => remove(s.id, s.name)}>delete</button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Loader>
      </Card>
    </>
  );
}
