"""`tradewind walkforward` and `tradewind check`: walk-forward analysis, bias checks and Monte Carlo of trades
(the work is ``tradewind.backtest``'s: ``walkforward``, ``checks``, ``montecarlo``)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from tradewind.cli.context import read_settings_if
from tradewind.cli.options import Run, run_options
from tradewind.cli.report import table, with_progress


# -- walk-forward ----------------------------------------------------------------------------------------------
@click.command("walkforward")
@run_options()
@click.option("--train", "train", help="Train window length: 30d, 12h, 90m, 2w.")
@click.option("--test", "test", help="Test window length (and the step between windows).")
@click.option(
    "--anchored", is_flag=True, help="Every train window starts at the first candle (grows by --test)."
)
@click.option(
    "--split",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="One train/test split instead: the train share of the candles, e.g. 0.7.",
)
@click.option(
    "--trials",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="Optuna trials per train window.",
)
@click.option(
    "--objective",
    default="sharpe",
    show_default=True,
    help="sharpe, sortino, return, max_drawdown or profit_factor (one).",
)
@click.option("--sampler", type=click.Choice(["tpe", "nsga2"]), default="tpe", show_default=True)
@click.option(
    "--prune/--no-prune",
    default=True,
    show_default=True,
    help="Median pruning on a quarter and a half of each train window.",
)
@click.option(
    "--seed", type=int, default=None, help="The sampler's seed, for a walk-forward that can be repeated."
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=None,
    help="Trials at once, in threads of this process (default: CPU count, at most 8).",
)
def walkforward(
    run: Run,
    train: str | None,
    test: str | None,
    anchored: bool,
    split: float | None,
    trials: int,
    objective: str,
    sampler: str,
    prune: bool,
    seed: int | None,
    parallel: int | None,
) -> None:
    """Walk-forward analysis of STRATEGY.lua: optimise its declared parameters on each train window and run
    the best ones on the test window after it; the out-of-sample results stitched, and the efficiency ratio."""
    settings = read_settings_if(
        run.market is not None
    )  # a bad setting stops the command before anything runs
    from tradewind.backtest import optimize as opt
    from tradewind.backtest import walkforward as wf
    from tradewind.sandbox.runtime import StrategyError

    if split is not None and (train or test or anchored):
        raise click.UsageError("give --split, or --train and --test (with --anchored), not both")
    objectives = opt.parse_objectives(objective)
    if len(objectives) != 1:
        raise click.BadParameter("a walk-forward optimises one objective", param_hint="--objective")
    try:
        config = run.study_config(objectives, sampler, prune, seed)
        spans = (wf.parse_span(train) if train else None, wf.parse_span(test) if test else None)
    except (opt.OptimizeError, wf.WalkForwardError) as exc:
        raise click.BadParameter(str(exc)) from None
    code = run.strategy.read_text()
    try:
        space = opt.declared_space(code, run.name)
    except StrategyError as exc:
        raise click.ClickException(str(exc)) from None
    run.one_source()
    arrays = run.candles(settings)
    mode = "split" if split is not None else "anchored" if anchored else "rolling"
    try:
        result = with_progress(
            lambda progress: wf.run(
                code,
                arrays,
                space,
                config,
                mode=mode,
                train_ms=spans[0],
                test_ms=spans[1],
                split=split,
                trials=trials,
                parallel=parallel or min(8, os.cpu_count() or 2),
                name=run.name,
                progress=progress,
            ),
            f"walk-forward ({mode}), windows",
            None,
            shown=not run.as_json,
        )
    except (opt.OptimizeError, wf.WalkForwardError) as exc:
        raise click.ClickException(str(exc)) from None
    doc = result.as_dict()
    if run.as_json:
        click.echo(json.dumps(doc))
    else:
        _wf_report(doc, sorted(opt.searched(space, config.fixed)))


def _wf_report(doc: dict[str, Any], names: list[str]) -> None:
    from rich.console import Console

    console = Console()
    obj = doc["objective"]
    t = table(
        f"walk-forward ({doc['mode']}) by {obj}",
        (
            "#",
            "train",
            "test",
            *names,
            f"IS {obj}",
            f"OOS {obj}",
            "IS return %",
            "OOS return %",
            "OOS trades",
        ),
    )
    for w in doc["windows"]:
        i, o = w["in_sample"], w["out_of_sample"]
        t.add_row(
            str(w["index"]),
            f"{w['train']['from'][:10]} +{w['train']['candles']}",
            f"{w['test']['from'][:16]} +{w['test']['candles']}",
            *(str(w["params"].get(k)) for k in names),
            f"{i['objective']:.4g}",
            f"{o['objective']:.4g}",
            f"{i['return_pct']:+.2f}",
            f"{o['return_pct']:+.2f}",
            str(o["trade_count"]),
        )
    console.print(t)
    oos, ins = doc["oos_equity"], doc["is_equity"]
    if oos:
        console.print(
            f"out of sample, stitched: {doc['cash']:,.2f} → {oos[-1][1]:,.2f} ({doc['oos_return_pct']:+.2f} %), "
            f"max drawdown {max(p[2] for p in oos):.2f} %"
        )
    if ins:
        console.print(f"in sample, chained:      {doc['cash']:,.2f} → {ins[-1][2]:,.2f}")
    wfe = doc["wfe"]
    console.print(
        f"annualised return: in sample {doc['is_annualised_pct']:+.2f} %, out of sample "
        f"{doc['oos_annualised_pct']:+.2f} %; walk-forward efficiency "
        + (f"{wfe:.2f}" if wfe is not None else "n/a (in-sample return not positive)")
    )


# -- bias checks and Monte Carlo ---------------------------------------------------------------------------------
CHECKS = ("recursive", "lookahead", "montecarlo")


@click.command("check")
@run_options()
@click.option(
    "--only",
    default=",".join(CHECKS),
    show_default=True,
    help="Which checks, comma-separated: recursive, lookahead, montecarlo.",
)
@click.option(
    "--points",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="Look-ahead: the cut candles checked (each costs two runs up to it).",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    help="Monte Carlo: resampled trade sequences per mode.",
)
@click.option("--seed", type=int, default=None, help="Monte Carlo's (and the look-ahead cuts') random seed.")
def check(run: Run, only: str, points: int, runs: int, seed: int | None) -> None:
    """Bias and robustness checks of STRATEGY.lua: its decisions with the lookback halved and doubled, its
    decisions with the later candles removed or changed, and Monte Carlo of its backtest's trades.
    Exit status 1 when a decision changed in either of the first two."""
    settings = read_settings_if(
        run.market is not None
    )  # a bad setting stops the command before anything runs
    from tradewind.backtest import checks as ck
    from tradewind.backtest import engine, montecarlo

    wanted = tuple(x.strip() for x in only.split(",") if x.strip())
    unknown = [x for x in wanted if x not in CHECKS]
    if unknown or not wanted:
        raise click.BadParameter(f"use {', '.join(CHECKS)}", param_hint="--only")
    code = run.strategy.read_text()
    run.one_source()
    arrays = run.candles(settings)
    p, lookback, name = run.fixed(), run.lookback, run.name
    doc: dict[str, Any] = {
        "strategy": run.strategy.name,
        "candles": len(arrays["time"]),
        "lookback": lookback,
    }
    try:
        if "recursive" in wanted:
            doc["recursive"] = ck.recursive_check(
                code, arrays, params=p, lookback=lookback, name=name
            ).as_dict()
        if "lookahead" in wanted:
            doc["lookahead"] = ck.lookahead_check(
                code, arrays, params=p, lookback=lookback, points=points, seed=seed, name=name
            ).as_dict()
    except ck.CheckError as exc:
        raise click.ClickException(str(exc)) from None
    if "montecarlo" in wanted:
        result = engine.run(code, arrays, params=p, name=name, unhooked_first=True, **run.costs())
        if result.error:
            raise click.ClickException(result.error)
        doc["montecarlo"] = montecarlo.simulate(
            [t.pnl for t in result.trades if t.pnl is not None], run.cash, runs=runs, seed=seed
        )
    failed = [k for k in ("recursive", "lookahead") if k in doc and not doc[k]["passed"]]
    doc["passed"] = not failed
    if run.as_json:
        click.echo(json.dumps(doc))
    else:
        _check_report(doc)
    if failed:
        sys.exit(1)


def _check_report(doc: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    if "recursive" in doc:
        r = doc["recursive"]
        console.print(
            f"[bold]recursive indicators[/] (lookback {r['lookback']} against "
            f"{' and '.join(str(v['lookback']) for v in r['variants'])}): "
            + ("[green]passed[/], no decision changed" if r["passed"] else "[red]decisions changed[/]")
        )
        for v in r["variants"]:
            if v["changed"]:
                agree = v["agree_from"] or "never (they differ at the last candle)"
                console.print(
                    f"  lookback {v['lookback']}: {v['changed']} decisions differ, from {v['first_changed']} "
                    f"to {v['last_changed']}; they agree from {agree}"
                )
                for e in v["examples"][:3]:
                    console.print(f"    {e['time']}: {e['base']} → {e['variant']}", highlight=False)
    if "lookahead" in doc:
        la = doc["lookahead"]
        if la["passed"]:
            console.print(
                f"[bold]look-ahead[/]: [green]passed[/]: at {la['cuts']} cuts, every decision up to the cut "
                "was the same with the later candles removed and with them changed "
                f"({la['decisions_compared']:,} decisions compared)"
            )
        else:
            console.print(
                f"[bold]look-ahead[/]: [red]failed[/] at {len(la['failed_cuts'])} of {la['cuts']} cuts: "
                "a decision changed with candles after it"
            )
            for c in la["failed_cuts"][:5]:
                console.print(
                    f"  cut {c['cut']}: removed → {c['differ_when_removed'][:3]}, "
                    f"changed → {c['differ_when_changed'][:3]}"
                )
    if "montecarlo" in doc:
        mc = doc["montecarlo"]
        t = table(
            f"Monte Carlo of {mc['trades']} trades, {mc['runs']} runs per mode",
            ("mode", "max dd % p5", "p50", "p95", "final equity p5", "p50", "p95", "P(loss)"),
        )
        t.add_row(
            "backtest",
            *[f"{mc['actual']['max_drawdown_pct']:.2f}"] * 3,
            *[f"{mc['actual']['final_equity']:,.2f}"] * 3,
            "",
        )
        for mode in ("bootstrap", "shuffle"):
            s = mc.get(mode)
            if s is None:
                continue
            dd, fe = s["max_drawdown_pct"], s["final_equity"]
            t.add_row(
                mode,
                *(f"{dd[k]:.2f}" for k in ("p5", "p50", "p95")),
                *(f"{fe[k]:,.2f}" for k in ("p5", "p50", "p95")),
                f"{s['loss_probability']:.1%}",
            )
        console.print(t)
