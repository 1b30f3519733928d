import { useEffect, useMemo, useState } from "react";
import { api, type ApiError, type Schemas } from "../api/client";
import { EquityChart } from "../components/CandleChart";
import { ProgressChart } from "../components/RunCharts";
import { RunFields, SearchFields, useRunForm } from "../components/RunFields";
import { Alert, Card, Field, Loader, Loading, PageHead, RunStatus, Stat, fmt, signed, time, tone } from "../components/ui";
import { RUN_FIELDS, SEARCH_FIELDS, asApiError, assertValid, checkPercent, checkRun, day, runBody, searchBody } from "../forms";
import { useLoad } from "../hooks";
import { Link, navigate } from "../router";
import { OBJECTIVES, checkSpan, metricText, paramsText, progressSeries, windowFields, type WalkForwardDoc } from "../runs";
import { ExportLinks, ResearchTabs } from "./Runs";

type WalkForward = Schemas["WalkForwardOut"];
const active = (w: WalkForward) => w.status === "queued" || w.status === "running";

function windowsText(c: Record<string, unknown>): string {
  return c.mode === "split" ? `one split at ${Math.round(Number(c.split) * 100)} %` : `${c.mode}: train ${c.train_text}, test ${c.test_text}`;
}

/** Start a walk-forward analysis and list them. */
export function WalkForwards() {
  const list = useLoad(() => api.walkforwards());
  const strategies = useLoad(() => api.strategies());
  const markets = useLoad(() => api.markets());
  const { form, setField, set } = useRunForm({ strategy_id: "", market_id: "", timeframe: "5m", from: day(-2), to: "", mode: "split", train: "12h", test: "4h",
    split: "0.7", trials: "20", objective: "sharpe", params: "", fee: "0.1", lookback: "500" }, markets.data?.items);
  const [err, setErr] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!list.data?.items.some(active)) return;
    const t = setTimeout(list.reload, 1500);
    return () => clearTimeout(t);
  }, [list.data]); // eslint-disable-line react-hooks/exhaustive-deps

  const start = async (e: React.FormEvent) => {
    e.preventDefault();
    setErr(null);
    setBusy(true);
    try {
      const trials = Number(form.trials), split = Number(form.split);
      assertValid([
        ...checkRun(form),
        Number.isInteger(trials) && trials >= 1 && trials <= 500 ? null : { field: "trials", message: "a whole number from 1 to 500" },
        form.mode === "split" ? (split > 0 && split < 1 ? null : { field: "split", message: "a share between 0 and 1, e.g. 0.7" }) : checkSpan("train", form.train),
        form.mode === "split" ? null : checkSpan("test", form.test),
        checkPercent("fee", form.fee, 10),
      ]);
      const res = await api.startWalkForward({
        ...runBody(form), mode: form.mode as "rolling" | "anchored" | "split", ...windowFields(form.mode, form.train, form.test, form.split),
        trials, objective: form.objective as Schemas["WalkForwardIn"]["objective"], ...searchBody(form),
      });
      navigate(`/research/walkforward/${res.id}`);
    } catch (x) {
      setErr(asApiError(x));
    } finally {
      setBusy(false);
    }
  };
  const sname = new Map((strategies.data?.items ?? []).map((s) => [s.id, s.name]));
  const mname = new Map((markets.data?.items ?? []).map((m) => [m.id, m.symbol]));
  const fields = [...RUN_FIELDS, "mode", "train", "test", "split", "trials", "objective", ...SEARCH_FIELDS];
  return (
    <>
      <PageHead title="Research"><ResearchTabs current="/research/walkforward" /></PageHead>
      <div className="grid wide-left">
        <Card title="Walk-forward analyses">
          <Loader state={list} empty={(d) => d.items.length === 0 && "No walk-forward yet: it optimises the strategy's declared parameters on a train window and runs the best on the test window after it. Start one with the form."}>
            {(d) => (
              <div className="scroll-x">
                <table>
                  <thead><tr><th>#</th><th>Strategy</th><th>Market</th><th>Windows</th><th>Status</th><th className="num">OOS return</th><th className="num">WFE</th><th className="hide-sm">When</th></tr></thead>
                  <tbody data-testid="walkforwards">
                    {d.items.map((w) => (
                      <tr key={w.id} className="clickable" onClick={() => navigate(`/research/walkforward/${w.id}`)}>
                        <td><Link to={`/research/walkforward/${w.id}`}>#{w.id}</Link></td>
                        <td>{sname.get(w.strategy_id) ?? `#${w.strategy_id}`} <span className="muted small">v{w.version}</span></td>
                        <td className="nowrap">{mname.get(w.market_id) ?? `#${w.market_id}`} · {w.timeframe}</td>
                        <td className="small">{windowsText(w.config)}</td>
                        <td><RunStatus testid="wf-status" status={w.status} /></td>
                        <td className={`num ${tone(w.metrics?.return_pct as number)}`}>{metricText("return_pct", w.metrics?.return_pct)}</td>
                        <td className="num">{metricText("wfe", w.metrics?.wfe)}</td>
                        <td className="muted hide-sm nowrap">{time(w.created_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Loader>
        </Card>
        <Card title="Walk-forward a strategy">
          <form onSubmit={start} className="stack" noValidate>
            <RunFields name="wf" form={form} onChange={setField} err={err} strategies={strategies.data?.items} markets={markets.data?.items}
              strategyHint="Its declared parameters (params = {...}) are optimised on each train window" toHint="Empty: up to the last candle" />
            <Field label="Windows" error={err?.forField("mode")}>
              <select name="wf-mode" value={form.mode} onChange={set("mode")}>
                <option value="split">One train/test split</option>
                <option value="rolling">Rolling: train windows moved on by the test length</option>
                <option value="anchored">Anchored: every train window starts at the first candle</option>
              </select>
            </Field>
            {form.mode === "split" ? (
              <Field label="Train share" error={err?.forField("split")} hint="The first part of the candles trains, the rest tests">
                <input name="wf-split" inputMode="decimal" value={form.split} onChange={set("split")} /></Field>
            ) : (
              <div className="row">
                <Field label="Train" error={err?.forField("train")} hint="30d, 12h, 90m, 2w"><input name="wf-train" value={form.train} onChange={set("train")} /></Field>
                <Field label="Test" error={err?.forField("test")} hint="and the step"><input name="wf-test" value={form.test} onChange={set("test")} /></Field>
              </div>
            )}
            <div className="row">
              <Field label="Trials per window" error={err?.forField("trials")}><input name="wf-trials" inputMode="numeric" value={form.trials} onChange={set("trials")} /></Field>
              <Field label="Objective" error={err?.forField("objective")}>
                <select name="wf-objective" value={form.objective} onChange={set("objective")}>{OBJECTIVES.map(([o, l]) => <option key={o} value={o}>{l}</option>)}</select>
              </Field>
            </div>
            <SearchFields name="wf" form={form} onChange={setField} err={err} />
            {err?.general(fields) && <Alert>{err.general(fields)}</Alert>}
            <button type="submit" disabled={busy} data-testid="start-walkforward">{busy ? "Starting…" : "Start walk-forward"}</button>
          </form>
        </Card>
      </div>
    </>
  );
}

/** A walk-forward's result: the stitched out-of-sample equity, in sample against out of sample by window, the
 *  efficiency, and each window's best parameters and results. */
export function WalkForwardPage({ id }: { id: number }) {
  const wf = useLoad(() => api.walkforward(id), [id]);
  const strategies = useLoad(() => api.strategies());
  useEffect(() => {
    if (!wf.data || !active(wf.data)) return;
    const t = setTimeout(wf.reload, 1000);
    return () => clearTimeout(t);
  }, [wf.data]); // eslint-disable-line react-hooks/exhaustive-deps
  const doc = (wf.data?.result ?? null) as (WalkForwardDoc & { trades: unknown[] }) | null;
  const progress = useMemo(() => (doc ? progressSeries(doc) : null), [doc]);
  const curve = useMemo(() => (doc ? doc.oos_equity.map(([t, equity, drawdown]) => ({ time: Math.floor(t / 1000), equity, drawdown })) : []), [doc]);
  if (!wf.data) return wf.error ? <Alert onRetry={wf.reload}>{wf.error.status === 404 ? "This walk-forward does not exist, or is not yours." : wf.error.message} <Link to="/research/walkforward">All walk-forwards</Link></Alert> : <Loading />;
  const w = wf.data;
  const c = w.config as Record<string, unknown>;
  const strategy = strategies.data?.items.find((s) => s.id === w.strategy_id);
  const objective = ((c.study as Record<string, unknown> | undefined)?.objectives as string[] | undefined)?.[0] ?? "";
  return (
    <>
      <PageHead title={`Walk-forward #${w.id}`}>
        {w.status === "done" && <ExportLinks kind="walkforward" id={w.id} />}
        <Link to="/research/walkforward">All walk-forwards</Link>
      </PageHead>
      <p className="muted subtitle">{windowsText(c)} · {String(c.trials)} trials per window by {objective} · {strategy ? <Link to={`/strategies/${strategy.id}`}>{strategy.name}</Link> : `strategy #${w.strategy_id}`} v{w.version} · {w.timeframe}
        {typeof c.from === "number" ? ` · from ${time(c.from)}` : ""}{typeof c.to === "number" ? ` to ${time(c.to)}` : ""}</p>
      <Card title="Result">
        <div className="stats" data-testid="wf-stats">
          <Stat label="Status" value={<RunStatus testid="wf-status" status={w.status} />} />
          <Stat label="Out of sample, stitched" value={doc ? `${signed(doc.oos_return_pct)} %` : "—"} tone={tone(doc?.oos_return_pct)} />
          <Stat label="In sample, annualised" value={doc ? `${signed(doc.is_annualised_pct)} %` : "—"} />
          <Stat label="Out of sample, annualised" value={doc ? `${signed(doc.oos_annualised_pct)} %` : "—"} />
          <Stat label="Walk-forward efficiency" value={<span data-testid="wfe">{doc ? (doc.wfe != null ? metricText("wfe", doc.wfe) : "n/a") : "—"}</span>} />
          <Stat label="OOS trades" value={metricText("trade_count", w.metrics?.trade_count)} />
          <Stat label="OOS max drawdown" value={metricText("max_drawdown_pct", w.metrics?.max_drawdown_pct)} />
        </div>
        {active(w) && <Loading label={w.status === "queued" ? "Waiting for a worker…" : "Optimising each train window, then running its test window…"} />}
        {w.status === "interrupted" && <Alert>The worker running this walk-forward stopped. Start it again from the form.</Alert>}
        {w.error && <Alert>{w.error}</Alert>}
        {doc && doc.wfe == null && <p className="muted small">The efficiency is n/a when the in-sample return is not positive.</p>}
      </Card>
      {doc && progress && (
        <>
          <Card title="Out of sample, the test windows stitched"><EquityChart curve={curve} cash={doc.cash} /></Card>
          <Card title="In sample and out of sample, by window">
            <ProgressChart inSample={progress.inSample} outOfSample={progress.outOfSample} windows={doc.windows.length} />
            <div className="legend"><span className="key"><i className="swatch is" /> in sample (each train window, chained)</span>
              <span className="key"><i className="swatch oos" /> out of sample (each test window, chained)</span></div>
          </Card>
          <Card title="Windows">
            <div className="scroll-x">
              <table>
                <thead><tr><th>#</th><th>Train</th><th>Test</th><th>Best parameters</th><th className="num">IS {objective}</th><th className="num">OOS {objective}</th>
                  <th className="num">IS return</th><th className="num">OOS return</th><th className="num">OOS trades</th><th className="num">WFE</th></tr></thead>
                <tbody data-testid="wf-windows">
                  {doc.windows.map((x) => {
                    const i = x.in_sample as Record<string, number | null>, o = x.out_of_sample as Record<string, number | null>;
                    return (
                      <tr key={x.index}>
                        <td>{x.index}</td>
                        <td className="small nowrap">{time(x.train.from)} +{x.train.candles}</td>
                        <td className="small nowrap">{time(x.test.from)} +{x.test.candles}</td>
                        <td className="mono small">{paramsText(x.params as Record<string, unknown>)}</td>
                        <td className="num">{fmt(i.objective, 3)}</td>
                        <td className="num">{fmt(o.objective, 3)}</td>
                        <td className={`num ${tone(i.return_pct)}`}>{metricText("return_pct", i.return_pct)}</td>
                        <td className={`num ${tone(o.return_pct)}`}>{metricText("return_pct", o.return_pct)}</td>
                        <td className="num">{metricText("trade_count", o.trade_count)}</td>
                        <td className="num">{metricText("wfe", x.wfe)}</td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          </Card>
        </>
      )}
    </>
  );
}
