import { useMemo, useState } from "react";
import { api } from "../api/client";
import { ReturnsChart, type Line } from "../components/RunCharts";
import { Alert, Card, Loader, Loading, PageHead, RunStatus, time, tone } from "../components/ui";
import { useLoad } from "../hooks";
import { Link, navigate } from "../router";
import {
  KIND_LABEL, MAX_COMPARE, SERIES_COLORS, compareLink, exportLinks, metricText, paramsText, parseRefs, returnLine, runLabel, runPage,
  settingsText, toggle, type Run, type RunKind,
} from "../runs";

const TABS: [string, string][] = [["/research", "Optimisations"], ["/research/walkforward", "Walk-forward"], ["/research/runs", "Runs"]];

/** The Research page's tabs: optimisations, walk-forward analyses, and every run kept. */
export function ResearchTabs({ current }: { current: string }) {
  return (
    <div className="segmented" role="tablist" data-testid="research-tabs">
      {TABS.map(([to, label]) => (
        <button key={to} role="tab" aria-selected={to === current} className={to === current ? "on" : ""} onClick={() => navigate(to)}>{label}</button>
      ))}
    </div>
  );
}

/** Downloads of a run: its trades (CSV), everything (JSON), and a report that opens offline (HTML). */
export function ExportLinks({ kind, id }: { kind: RunKind; id: number }) {
  const x = exportLinks(kind, id);
  return (
    <span className="exports" data-testid="exports">
      <a href={x.csv} download data-testid="export-csv" title="The trades, one row each">CSV</a>
      <a href={x.json} download data-testid="export-json" title="Everything kept of the run, the strategy's code included">JSON</a>
      <a href={x.html} download data-testid="export-html" title="A report with its charts, that opens without the server">HTML report</a>
    </span>
  );
}

const KINDS: [string, string][] = [["", "All"], ["backtest", "Backtests"], ["study", "Optimisations"], ["walkforward", "Walk-forwards"]];

/** Every run kept (backtests, optimisations, walk-forwards), newest first: choose two or more to compare. */
export function RunsPage() {
  const [kind, setKind] = useState("");
  const [pages, setPages] = useState<string[]>([]); // the cursors of the pages loaded after the first
  const list = useLoad(async () => {
    const first = await api.runs({ kind: kind || undefined, limit: 50 });
    const items = [...first.items];
    let next = first.next_before;
    for (const before of pages) {
      const more = await api.runs({ kind: kind || undefined, limit: 50, before });
      items.push(...more.items);
      next = more.next_before;
    }
    return { items, next };
  }, [kind, pages]);
  const [selected, setSelected] = useState<string[]>([]);
  const pick = (ref: string) => setSelected((s) => toggle(s, ref));
  return (
    <>
      <PageHead title="Research"><ResearchTabs current="/research/runs" /></PageHead>
      <Card title="Runs" actions={
        <>
          <div className="segmented">{KINDS.map(([k, label]) => <button key={k} className={k === kind ? "on" : ""} onClick={() => { setKind(k); setPages([]); }}>{label}</button>)}</div>
          <button className="primary small" data-testid="compare-runs" disabled={selected.length < 2 || selected.length > MAX_COMPARE}
            onClick={() => navigate(compareLink(selected))} title="Choose two or more runs in the table">
            Compare {selected.length >= 2 ? `${selected.length} runs` : "(choose 2 or more)"}
          </button>
        </>
      }>
        <Loader state={list} empty={(d) => d.items.length === 0 && "No runs yet: every backtest, optimisation and walk-forward you run is kept here."}>
          {(d) => (
            <>
              <div className="scroll-x">
                <table>
                  <thead><tr><th aria-label="Compare" /><th>Run</th><th>Strategy</th><th>Market</th><th className="hide-sm">Range</th><th>Status</th>
                    <th className="num">Return</th><th className="num">Max DD</th><th className="num">Sharpe</th><th className="num">Trades</th><th className="hide-sm">When</th><th>Export</th></tr></thead>
                  <tbody data-testid="runs">
                    {d.items.map((r) => (
                      <tr key={r.ref} data-ref={r.ref} className={selected.includes(r.ref) ? "selected" : ""}>
                        <td><input type="checkbox" aria-label={`Compare ${runLabel(r)}`} checked={selected.includes(r.ref)} onChange={() => pick(r.ref)} /></td>
                        <td className="nowrap"><Link to={runPage(r)}>{KIND_LABEL[r.kind]} #{r.id}</Link></td>
                        <td>{r.strategy} <span className="muted small">v{r.version}{r.draft ? " (unsaved code)" : ""}</span>
                          <div className="muted small">{settingsText(r)}{r.params ? ` · ${paramsText(r.params)}` : ""}</div></td>
                        <td className="nowrap">{r.symbol} · {r.timeframe}</td>
                        <td className="muted small hide-sm nowrap">{r.range.first != null ? time(r.range.first) : "—"}<br />{r.range.last != null ? time(r.range.last) : ""}</td>
                        <td><RunStatus status={r.status} /></td>
                        <td className={`num ${tone(r.metrics.return_pct as number)}`}>{metricText("return_pct", r.metrics.return_pct)}</td>
                        <td className="num">{metricText("max_drawdown_pct", r.metrics.max_drawdown_pct)}</td>
                        <td className="num">{metricText("sharpe", r.metrics.sharpe)}</td>
                        <td className="num">{metricText("trade_count", r.metrics.trade_count)}</td>
                        <td className="muted hide-sm nowrap">{time(r.created_at)}</td>
                        <td className="nowrap">{r.status === "done" ? <ExportLinks kind={r.kind} id={r.id} /> : <span className="muted small">—</span>}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
              {d.next && <button className="small" onClick={() => setPages((p) => [...p, d.next!])}>Older runs</button>}
            </>
          )}
        </Loader>
      </Card>
    </>
  );
}

/** Runs side by side: their headline metrics in one table (the best of each row marked), their equity on one
 *  chart (as return %), and what each ran with. */
export function ComparePage() {
  const refs = useMemo(() => parseRefs(location.search), []);
  const cmp = useLoad(() => api.compareRuns(refs), [refs.join(",")]);
  const lines = useMemo<Line[]>(() => (cmp.data?.runs ?? []).map((r, i) => ({
    label: runLabel(r), color: SERIES_COLORS[i % SERIES_COLORS.length], points: returnLine(r.equity, (r.settings as Record<string, unknown>).cash),
  })), [cmp.data]);
  if (refs.length < 2) return <><PageHead title="Compare runs" /><Alert>Choose two or more runs to compare on the <Link to="/research/runs">Runs</Link> tab.</Alert></>;
  if (!cmp.data) return cmp.error ? <Alert onRetry={cmp.reload}>{cmp.error.status === 404 ? "One of these runs does not exist, or is not yours." : cmp.error.message} <Link to="/research/runs">All runs</Link></Alert> : <Loading />;
  const runs = cmp.data.runs;
  const head = (r: Run, i: number) => (
    <th key={r.ref} className="num"><i className="swatch" style={{ background: SERIES_COLORS[i % SERIES_COLORS.length] }} /> <Link to={runPage(r)}>{KIND_LABEL[r.kind]} #{r.id}</Link>
      <div className="muted small">{r.strategy} v{r.version}</div></th>
  );
  const row = (label: string, cells: (r: Run) => React.ReactNode) => (
    <tr key={label}><th>{label}</th>{runs.map((r) => <td key={r.ref} className="num small">{cells(r)}</td>)}</tr>
  );
  return (
    <>
      <PageHead title="Compare runs"><Link to="/research/runs">All runs</Link></PageHead>
      <Card title="Metrics">
        <div className="scroll-x">
          <table className="compare" data-testid="compare-metrics">
            <thead><tr><th>Metric</th>{runs.map(head)}</tr></thead>
            <tbody>
              {cmp.data.metrics.map((m) => (
                <tr key={m.key} data-metric={m.key}>
                  <th>{m.label}{m.better && <span className="muted small"> ({m.better} is better)</span>}</th>
                  {m.values.map((v, i) => <td key={runs[i].ref} className={`num${m.best.includes(i) ? " best" : ""}`}>{metricText(m.key, v)}{m.best.includes(i) && " ★"}</td>)}
                </tr>
              ))}
              {row("Market", (r) => `${r.symbol} · ${r.timeframe}`)}
              {row("Candles from", (r) => (r.range.first != null ? time(r.range.first) : "—"))}
              {row("to", (r) => (r.range.last != null ? time(r.range.last) : "—"))}
              {row("Parameters", (r) => <span className="mono">{r.kind === "walkforward" ? "per window" : paramsText(r.params)}</span>)}
              {row("Settings", (r) => settingsText(r))}
              {row("Status", (r) => <RunStatus status={r.status} />)}
              {row("Export", (r) => <ExportLinks kind={r.kind} id={r.id} />)}
            </tbody>
          </table>
        </div>
      </Card>
      <Card title="Equity, as return from the start">
        <ReturnsChart lines={lines} />
        <p className="muted small">Each curve is the run's equity over its own candles, as a return on its starting cash (a walk-forward: its
          out-of-sample windows stitched; an optimisation: its best trial run in full).</p>
      </Card>
    </>
  );
}
