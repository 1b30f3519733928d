import { useEffect, useMemo, useState } from "react";
import { api, type ApiError, type Schemas } from "../api/client";
import { EquityChart } from "../components/CandleChart";
import { RunFields, SearchFields, useRunForm } from "../components/RunFields";
import { Alert, Card, Field, Loader, Loading, PageHead, RunStatus, Stat, fmt, signed, time, tone } from "../components/ui";
import { RUN_FIELDS, SEARCH_FIELDS, asApiError, assertValid, checkPercent, checkRun, day, formatParams, runBody, searchBody } from "../forms";
import { useLoad } from "../hooks";
import { Link, navigate } from "../router";
import { OBJECTIVES, metricText } from "../runs";
import { ExportLinks, ResearchTabs } from "./Runs";

type Study = Schemas["StudyOut"];
type Trial = Schemas["TrialOut"];

const LABEL = Object.fromEntries(OBJECTIVES) as Record<string, string>;
const active = (s: Study) => s.status === "queued" || s.status === "running";

function counted(s: Study): number {
  const c = (s.summary?.counts ?? {}) as Record<string, number>;
  return (c.complete ?? 0) + (c.pruned ?? 0) + (c.fail ?? 0);
}

/** The assignment form, filled with this study's strategy, market and timeframe and a trial's parameters. */
export function assignmentLink(s: Study, params: Record<string, unknown>): string {
  const q = new URLSearchParams({ strategy: String(s.strategy_id), market: String(s.market_id), timeframe: s.timeframe,
    params: formatParams(params), lookback: String((s.config.study as Record<string, unknown> | undefined)?.lookback ?? 500) });
  return `/assignments?${q}`;
}

export function Studies() {
  const list = useLoad(() => api.studies());
  const strategies = useLoad(() => api.strategies());
  const markets = useLoad(() => api.markets());
  const { form, setField, set } = useRunForm({ strategy_id: "", market_id: "", timeframe: "1m", from: day(-2), to: "", trials: "50",
    sampler: "", params: "", fee: "0.1", lookback: "500" }, markets.data?.items);
  const [objectives, setObjectives] = useState<string[]>(["sharpe"]);
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!list.data?.items.some(active)) return;
    const t = setTimeout(list.reload, 1500);
    return () => clearTimeout(t);
  }, [list.data]); // eslint-disable-line react-hooks/exhaustive-deps

  const toggle = (o: string) => setObjectives(objectives.includes(o) ? objectives.filter((x) => x !== o) : [...objectives, o]);
  const start = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    setBusy(true);
    try {
      const trials = Number(form.trials);
      assertValid([
        ...checkRun(form),
        objectives.length ? null : { field: "objectives", message: "choose at least one objective" },
        Number.isInteger(trials) && trials >= 1 && trials <= 2000 ? null : { field: "trials", message: "a whole number from 1 to 2000" },
        checkPercent("fee", form.fee, 10),
      ]);
      const res = await api.startStudy({
        ...runBody(form), objectives: objectives as Schemas["StudyIn"]["objectives"], trials, ...searchBody(form),
        ...(form.sampler ? { sampler: form.sampler as "tpe" | "nsga2" } : {}),
      });
      navigate(`/research/${res.id}`);
    } catch (x) {
      setErr(asApiError(x));
    } finally {
      setBusy(false);
    }
  };
  const sname = new Map((strategies.data?.items ?? []).map((s) => [s.id, s.name]));
  const mname = new Map((markets.data?.items ?? []).map((m) => [m.id, m.symbol]));
  const fields = [...RUN_FIELDS, "objectives", "trials", "sampler", ...SEARCH_FIELDS];
  return (
    <>
      <PageHead title="Research"><ResearchTabs current="/research" /></PageHead>
      <div className="grid wide-left">
        <Card title="Optimisations">
          <Loader state={list} empty={(d) => d.items.length === 0 && "No optimisations yet: start one with the form. The strategy declares its parameters' ranges at its top level: params = { fast = {min = 5, max = 50}, ... }."}>
            {(d) => (
              <div className="scroll-x">
                <table>
                  <thead><tr><th>#</th><th>Strategy</th><th>Market</th><th>Objectives</th><th>Status</th><th className="num">Trials</th><th className="num">Best</th><th className="hide-sm">When</th></tr></thead>
                  <tbody data-testid="studies">
                    {d.items.map((s) => {
                      const best = s.summary?.best as { values?: number[] } | null | undefined;
                      return (
                        <tr key={s.id} className="clickable" onClick={() => navigate(`/research/${s.id}`)}>
                          <td><Link to={`/research/${s.id}`}>#{s.id}</Link></td>
                          <td>{sname.get(s.strategy_id) ?? `#${s.strategy_id}`} <span className="muted small">v{s.version}</span></td>
                          <td className="nowrap">{mname.get(s.market_id) ?? `#${s.market_id}`} · {s.timeframe}</td>
                          <td>{s.objectives.join(", ")}</td>
                          <td><RunStatus testid="study-status" status={s.status} /></td>
                          <td className="num">{counted(s)} / {s.trials}</td>
                          <td className="num">{best?.values ? best.values.map((v) => fmt(v)).join(" · ") : "—"}</td>
                          <td className="muted hide-sm nowrap">{time(s.created_at)}</td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            )}
          </Loader>
        </Card>
        <Card title="Optimise a strategy">
          <form onSubmit={start} className="stack" noValidate>
            <RunFields name="study" form={form} onChange={setField} err={err} strategies={strategies.data?.items} markets={markets.data?.items}
              strategyHint="Its declared parameters (params = {...}) are searched" />
            <Field label="Objectives" error={err?.forField("objectives") ?? err?.forField("objectives.0")} hint="Two or more: a Pareto front">
              <div className="checks">
                {OBJECTIVES.map(([o, label]) => (
                  <label key={o} className="check"><input type="checkbox" name={`objective-${o}`} checked={objectives.includes(o)} onChange={() => toggle(o)} /> {label}</label>
                ))}
              </div>
            </Field>
            <div className="row">
              <Field label="Trials" error={err?.forField("trials")}><input name="study-trials" inputMode="numeric" value={form.trials} onChange={set("trials")} /></Field>
              <Field label="Sampler" error={err?.forField("sampler")}>
                <select name="study-sampler" value={form.sampler} onChange={set("sampler")}>
                  <option value="">{objectives.length > 1 ? "NSGA-II (default)" : "TPE (default)"}</option>
                  <option value="tpe">TPE</option><option value="nsga2">NSGA-II</option>
                </select>
              </Field>
            </div>
            <SearchFields name="study" form={form} onChange={setField} err={err} />
            {err?.general([...fields, "objectives.0"]) && <Alert>{err.general([...fields, "objectives.0"])}</Alert>}
            <button type="submit" disabled={busy} data-testid="start-study">{busy ? "Starting…" : "Start optimisation"}</button>
          </form>
        </Card>
      </div>
    </>
  );
}

/** Importances as horizontal bars, largest first. */
function Importances({ values }: { values: Record<string, number> }) {
  const rows = Object.entries(values).sort((a, b) => b[1] - a[1]);
  if (!rows.length) return <p className="muted">Not enough completed trials yet.</p>;
  return (
    <div className="bars" data-testid="importances">
      {rows.map(([k, v]) => (
        <div key={k} className="bar-row">
          <span className="mono small bar-label">{k}</span>
          <span className="bar-track"><span className="bar-fill" style={{ width: `${Math.max(1, v * 100)}%` }} /></span>
          <span className="num small">{fmt(v * 100, 1)} %</span>
        </div>
      ))}
    </div>
  );
}

/** Two objectives: every completed trial as a dot, the Pareto front's in colour; a click opens the trial. */
function Pareto({ study, trials, front, onPick }: { study: Study; trials: Trial[]; front: Set<number>; onPick: (n: number) => void }) {
  const done = trials.filter((t) => t.state === "complete" && t.values && t.values.length === 2);
  if (done.length < 2) return <p className="muted">The front appears once two trials have completed.</p>;
  const W = 420, H = 260, P = 40;
  const xs = done.map((t) => t.values![0]), ys = done.map((t) => t.values![1]);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (v: number) => P + ((v - x0) / (x1 - x0 || 1)) * (W - 2 * P);
  const sy = (v: number) => H - P - ((v - y0) / (y1 - y0 || 1)) * (H - 2 * P);
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="pareto" data-testid="pareto" role="img" aria-label="Pareto front">
      <line x1={P} y1={H - P} x2={W - P} y2={H - P} className="axis" /><line x1={P} y1={P} x2={P} y2={H - P} className="axis" />
      <text x={W / 2} y={H - 8} textAnchor="middle" className="axis-label">{LABEL[study.objectives[0]] ?? study.objectives[0]} ({fmt(x0)} – {fmt(x1)})</text>
      <text x={12} y={H / 2} textAnchor="middle" transform={`rotate(-90 12 ${H / 2})`} className="axis-label">{LABEL[study.objectives[1]] ?? study.objectives[1]} ({fmt(y0)} – {fmt(y1)})</text>
      {done.map((t) => (
        <circle key={t.number} cx={sx(t.values![0])} cy={sy(t.values![1])} r={front.has(t.number) ? 5 : 3}
          className={front.has(t.number) ? "dot front" : "dot"} onClick={() => onPick(t.number)}>
          <title>trial {t.number}: {t.values!.map((v) => fmt(v)).join(", ")}</title>
        </circle>
      ))}
    </svg>
  );
}

interface BestRun { trial: number; metrics?: Record<string, number | null>; equity?: number[][]; trades?: unknown[]; error?: string | null }

/** The best trial's parameters run again in full once the study ended: its equity curve and trades. */
function BestRunPanel({ study, run }: { study: Study; run: BestRun }) {
  const curve = useMemo(() => (run.equity ?? []).map(([t, equity, drawdown]) => ({ time: Math.floor(t / 1000), equity, drawdown })), [run.equity]);
  const cash = (study.config.study as Record<string, unknown> | undefined)?.cash;
  const m = run.metrics ?? {};
  return (
    <div data-testid="best-run">
      <h4>These parameters run in full <span className="muted small">(kept with the study: compare or export it from the Runs tab)</span></h4>
      {run.error && <Alert>{run.error}</Alert>}
      <div className="stats">
        <Stat label="Return" value={metricText("return_pct", m.return_pct)} tone={tone(m.return_pct)} />
        <Stat label="Max drawdown" value={metricText("max_drawdown_pct", m.max_drawdown_pct)} />
        <Stat label="Sharpe" value={metricText("sharpe", m.sharpe)} />
        <Stat label="Trades" value={metricText("trade_count", m.trade_count)} />
      </div>
      {curve.length > 0 && <EquityChart curve={curve} cash={typeof cash === "number" ? cash : undefined} />}
    </div>
  );
}

function TrialPanel({ study, trial }: { study: Study; trial: Trial }) {
  const m = trial.metrics as Record<string, number | null | undefined>;
  const run = study.best_run as BestRun | null | undefined;
  return (
    <Card title={`Trial #${trial.number}`} actions={<button className="small" data-testid="create-assignment" onClick={() => navigate(assignmentLink(study, trial.params))}>Create an assignment with these</button>}>
      <div data-testid="trial-detail">
        <p className="mono" data-testid="trial-params">{formatParams(trial.params)}</p>
        <div className="stats">
          {study.objectives.map((o, i) => <Stat key={o} label={LABEL[o] ?? o} value={trial.values ? fmt(trial.values[i], 4) : "—"} />)}
          <Stat label="Return" value={m.return_pct != null ? `${signed(m.return_pct)} %` : "—"} tone={tone(m.return_pct)} />
          <Stat label="Max drawdown" value={m.max_drawdown_pct != null ? `${fmt(m.max_drawdown_pct)} %` : "—"} />
          <Stat label="Sharpe" value={fmt(m.sharpe)} />
          <Stat label="Trades" value={m.trade_count ?? "—"} />
        </div>
        <p className="muted small">{trial.state} · run by {trial.worker ?? "—"}{trial.attempts > 1 ? ` (sent ${trial.attempts} times: a worker was lost)` : ""} · {trial.duration_s != null ? `${fmt(trial.duration_s, 2)} s` : ""}
          {trial.intermediate.length > 0 && <> · checkpoints {trial.intermediate.map(([n, v]) => `${n} candles: ${fmt(v)}`).join(", ")}</>}</p>
        {trial.error && <Alert>{trial.error}</Alert>}
        {run && run.trial === trial.number && <BestRunPanel study={study} run={run} />}
      </div>
    </Card>
  );
}

export function StudyPage({ id }: { id: number }) {
  const st = useLoad(() => api.study(id), [id]);
  const [picked, setPicked] = useState<number | null>(null);
  const [resumeErr, setResumeErr] = useState<ApiError | null>(null);
  useEffect(() => {
    if (!st.data || !active(st.data)) return;
    const t = setTimeout(st.reload, 1000);
    return () => clearTimeout(t);
  }, [st.data]); // eslint-disable-line react-hooks/exhaustive-deps
  if (!st.data) return st.error ? <Alert onRetry={st.reload}>{st.error.message}</Alert> : <Loading />;
  const s = st.data;
  const trials = s.trial_results ?? [];
  const best = s.best ?? [];
  const front = new Set(best);
  const byNumber = new Map(trials.map((t) => [t.number, t]));
  const open = picked != null ? byNumber.get(picked) : undefined;
  // the best trial, or on a Pareto front the one best by the first objective
  const sign = s.directions[0] === "minimize" ? 1 : -1;
  const bestTrial = best.map((n) => byNumber.get(n)).filter((t): t is Trial => !!t?.values)
    .sort((a, b) => sign * (a.values![0] - b.values![0]))[0];
  const resume = async () => {
    setResumeErr(null);
    try {
      await api.resumeStudy(s.id, Math.max(s.trials, counted(s) + 10));
      st.reload();
    } catch (x) {
      setResumeErr(asApiError(x));
    }
  };
  return (
    <>
      <PageHead title={`Optimisation #${s.id}`}>{s.best_run && <ExportLinks kind="study" id={s.id} />}<Link to="/research">All optimisations</Link></PageHead>
      <Card title="Study" actions={!active(s) && <button className="small" onClick={resume} data-testid="resume-study">Resume (+10 trials)</button>}>
        <div className="stats">
          <Stat label="Status" value={<RunStatus testid="study-status" status={s.status} />} />
          <Stat label="Trials" value={<span data-testid="study-trials">{counted(s)} / {s.trials}</span>} />
          <Stat label="Objectives" value={s.objectives.map((o) => LABEL[o] ?? o).join(", ")} />
          <Stat label="Sampler" value={s.sampler === "nsga2" ? "NSGA-II" : "TPE"} />
        </div>
        {s.error && <Alert>{s.error}</Alert>}
        {resumeErr && <Alert>{resumeErr.message}</Alert>}
        {s.status === "interrupted" && <p className="muted">The worker driving this study stopped: resume it to run the missing trials (an interrupted trial runs again).</p>}
      </Card>
      <div className="grid">
        <Card title={best.length > 1 ? `Pareto front (${best.length} trials)` : "Best parameters"}>
          {bestTrial ? (
            <div data-testid="best">
              {best.length > 1 && <p className="muted small">Best on {LABEL[s.objectives[0]] ?? s.objectives[0]} of the front (★ in the table):</p>}
              <p className="mono" data-testid="best-params">{formatParams(bestTrial.params)}</p>
              <p>{s.objectives.map((o, i) => `${LABEL[o] ?? o} ${fmt(bestTrial.values?.[i], 4)}`).join(" · ")}</p>
              <div className="row">
                <button className="small" data-testid="open-best" onClick={() => setPicked(bestTrial.number)}>Open trial #{bestTrial.number}</button>
                <button className="small" onClick={() => navigate(assignmentLink(s, bestTrial.params))}>Create an assignment with these</button>
              </div>
            </div>
          ) : <p className="muted">{active(s) ? "Waiting for the first trial to complete…" : "No trial completed."}</p>}
        </Card>
        <Card title="Parameter importance">
          {Object.entries(s.importances ?? {}).map(([o, v]) => (
            <div key={o}>{s.objectives.length > 1 && <h4>{LABEL[o] ?? o}</h4>}<Importances values={v} /></div>
          ))}
          {!Object.keys(s.importances ?? {}).length && <p className="muted">Not enough completed trials yet.</p>}
        </Card>
      </div>
      {s.objectives.length === 2 && <Card title="Trials by both objectives"><Pareto study={s} trials={trials} front={front} onPick={setPicked} /></Card>}
      {open && <TrialPanel study={s} trial={open} />}
      <Card title="Trials">
        <div className="scroll-x">
          <table>
            <thead><tr><th>#</th><th>State</th><th>Parameters</th>{s.objectives.map((o) => <th key={o} className="num">{LABEL[o] ?? o}</th>)}<th className="num">Return</th><th className="num">Max DD</th><th className="num">Trades</th><th className="hide-sm">Worker</th></tr></thead>
            <tbody data-testid="trials">
              {[...trials].reverse().map((t) => {
                const m = t.metrics as Record<string, number | null | undefined>;
                return (
                  <tr key={t.number} className={`clickable${front.has(t.number) ? " best" : ""}`} onClick={() => setPicked(t.number)}>
                    <td>{t.number}{front.has(t.number) && " ★"}</td>
                    <td><span className={`pill ${t.state === "complete" ? "ok" : t.state === "fail" ? "error" : "pending"}`}>{t.requeued ? "interrupted" : t.state}</span></td>
                    <td className="mono small">{formatParams(t.params)}</td>
                    {s.objectives.map((o, i) => <td key={o} className="num">{t.values ? fmt(t.values[i], 3) : t.intermediate.length ? <span className="muted">{fmt(t.intermediate[t.intermediate.length - 1][1], 3)}</span> : "—"}</td>)}
                    <td className={`num ${tone(m.return_pct)}`}>{m.return_pct != null ? `${signed(m.return_pct)} %` : "—"}</td>
                    <td className="num">{m.max_drawdown_pct != null ? `${fmt(m.max_drawdown_pct)} %` : "—"}</td>
                    <td className="num">{m.trade_count ?? "—"}</td>
                    <td className="muted hide-sm">{t.same_as != null ? `same as #${t.same_as}` : `${t.worker ?? ""}${t.attempts > 1 ? ` (×${t.attempts})` : ""}`}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </Card>
    </>
  );
}
