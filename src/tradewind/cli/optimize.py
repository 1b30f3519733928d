"""`tradewind optimize`: an Optuna study of a strategy's declared parameters, run on the backtest workers (the
work is ``tradewind.backtest.optimize``'s)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import click

from tradewind.cli import candles as source
from tradewind.cli.backtest import inline
from tradewind.cli.context import read_settings
from tradewind.domain import TIMEFRAMES


@click.command("optimize")
@click.argument("strategy", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A candle file (CSV, freqtrade JSON/feather, Gekko CSV).",
)
@click.option("--market", help="A stored market: its id (see `tradewind data list`) or EXCHANGE:SYMBOL.")
@click.option("--timeframe", type=click.Choice(list(TIMEFRAMES)), default="1m", show_default=True)
@click.option("--from", "start", help="Start time (ISO 8601 or epoch ms), with --market.")
@click.option("--to", "end", help="End time (exclusive), with --market.")
@click.option(
    "--trials",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="Trials the study should have in all (a resumed study runs only the missing ones).",
)
@click.option(
    "--objective",
    "objective",
    default="sharpe",
    show_default=True,
    help="sharpe, sortino, return, max_drawdown or profit_factor; several, comma-separated, for a "
    "Pareto front.",
)
@click.option(
    "--sampler",
    type=click.Choice(["tpe", "nsga2"]),
    default=None,
    help="[default: tpe for one objective, nsga2 for several]",
)
@click.option(
    "--study", "study_name", help="The study's name in the storage (default: the strategy and the time)."
)
@click.option("--resume", is_flag=True, help="Go on with the study --study until it has --trials trials.")
@click.option(
    "--prune/--no-prune",
    default=True,
    show_default=True,
    help="Median pruning on a quarter and a half of the candles (one objective only).",
)
@click.option("--seed", type=int, default=None, help="The sampler's seed, for a study that can be repeated.")
@click.option(
    "--param", "params", multiple=True, help="Fix a parameter, name=value (not searched); repeatable."
)
@click.option("--fee", type=click.FloatRange(0, 0.1), default=0.001, show_default=True)
@click.option("--maker-fee", type=click.FloatRange(0, 0.1), default=None)
@click.option("--cash", type=click.FloatRange(min=0, min_open=True), default=10_000.0, show_default=True)
@click.option("--slippage-bps", type=click.FloatRange(0, 1000), default=0.0, show_default=True)
@click.option("--lookback", type=click.IntRange(1, 100_000), default=500, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Local workers without TRADEWIND_NATS_URL (default: CPU count).",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 256),
    default=None,
    help="Trials at once (default: the local workers, or 4 on a bus).",
)
@click.option(
    "--worker-timeout",
    type=click.FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds without a heartbeat before a trial's job is sent to another worker.",
)
@click.option("--top", type=click.IntRange(1), default=5, show_default=True, help="Best trials shown.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def optimize(
    strategy: Path,
    data_file: Path | None,
    market: str | None,
    timeframe: str,
    start: str | None,
    end: str | None,
    trials: int,
    objective: str,
    sampler: str | None,
    study_name: str | None,
    resume: bool,
    prune: bool,
    seed: int | None,
    params: tuple[str, ...],
    fee: float,
    maker_fee: float | None,
    cash: float,
    slippage_bps: float,
    lookback: int,
    workers: int | None,
    parallel: int | None,
    worker_timeout: float,
    top: int,
    as_json: bool,
) -> None:
    """Search STRATEGY.lua's declared parameters (its top-level `params = {...}`) for the best OBJECTIVE.

    The study is kept in the database of the current settings (TRADEWIND_DATA_DIR / TRADEWIND_DATABASE_URL),
    so `--study NAME --resume` goes on with it after an interruption."""
    settings = read_settings()  # the study is kept in its database
    import logging
    import os
    import time

    from tradewind.backtest import optimize as opt
    from tradewind.backtest import sweep
    from tradewind.bus.messages import BacktestData
    from tradewind.sandbox.runtime import StrategyError

    source.one_source(data_file, market)
    if resume and not study_name:
        raise click.UsageError("--resume needs --study NAME")
    objectives = opt.parse_objectives(objective)
    try:
        config = opt.StudyConfig(
            objectives=objectives,
            sampler=sampler or opt.default_sampler(objectives),
            prune=prune,
            seed=seed,
            fixed=source.parse_params(params),
            cash=cash,
            fee=fee,
            maker_fee=maker_fee,
            slippage=slippage_bps / 10_000,
            lookback=lookback,
        )
    except opt.OptimizeError as exc:
        raise click.BadParameter(str(exc), param_hint="--objective/--sampler") from None
    code = strategy.read_text()
    try:
        space = opt.declared_space(code, strategy.stem)
    except StrategyError as exc:
        raise click.ClickException(str(exc)) from None
    t0, t1 = source.parse_times(start, end)
    if data_file is not None:
        n_candles = len(source.file_candles(data_file, timeframe)["time"])
        data = BacktestData(path=str(data_file.resolve()), tf=timeframe)
        if settings.nats_url:  # remote workers cannot read our file: the candles go with each job
            data = inline(data_file, timeframe) or data
    else:
        assert market is not None
        market_id = source.market_id(settings, market)
        n_candles = len(source.market_candles(settings, str(market_id), timeframe, t0, t1)["time"])
        data = BacktestData(market_id=market_id, tf=timeframe, start=t0, end=t1)
    name = study_name or f"{strategy.stem}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
    if name.startswith("web-"):
        raise click.BadParameter("names starting with web- are the web app's studies", param_hint="--study")
    settings.make_data_dir()
    try:
        storage = opt.open_storage(settings.db_url)
        study = opt.open_study(storage, name, config, resume=resume)
    except opt.OptimizeError as exc:
        raise click.ClickException(str(exc)) from None
    if resume:  # go on as the study started (its objectives are checked to be the same)
        config = opt.StudyConfig.of({**study.user_attrs.get("config", {}), "prune": prune})
    n = workers or os.cpu_count() or 2
    lanes = parallel or (n if settings.nats_url is None else 4)
    logging.getLogger("tradewind.bus.connection").setLevel(logging.ERROR)
    where = settings.nats_url or f"{n} local worker(s)"
    job = opt.Job(code=code, data=data, name=strategy.stem, config=config)
    started = time.perf_counter()

    async def go(progress: Any = None) -> int:
        from tradewind.bus.connection import connect

        async with sweep.LocalWorkers(settings.nats_url, n, None if data_file else settings.db_url) as url:
            nc = await connect(url, f"optimize-{name[:40]}")
            try:
                runner = opt.BusRunner(nc, job, worker_timeout_s=worker_timeout)
                driver = opt.Optimizer(study, space, job, runner, n_candles, progress=progress)
                return await driver.run(trials, lanes)
            finally:
                await nc.close()

    try:
        if as_json:
            asyncio.run(go())
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn(f"study {name} on {where}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[best]}"),
                transient=True,
            ) as bar:
                done = sum(1 for t in study.get_trials(deepcopy=False) if opt.counted(t))
                task = bar.add_task("optimize", total=trials, completed=min(done, trials), best="")

                def show(p: opt.Progress) -> None:
                    bar.update(task, completed=p.finished, best=f"best {p.best}" if p.best else "")

                asyncio.run(go(show))
    except (opt.OptimizeError, sweep.SweepError) as exc:
        raise click.ClickException(str(exc)) from None
    took = round(time.perf_counter() - started, 3)
    rows = opt.trial_rows(study)
    best = opt.best_numbers(study)
    by_number = {r["number"]: r for r in rows}
    best_rows = [by_number[i] for i in best]
    if len(config.objectives) == 1:
        best_rows = best_rows[:1]
    else:  # the front, best first by the first objective
        sign = -1 if config.directions[0] == "maximize" else 1
        best_rows.sort(key=lambda r: sign * r["values"][0])
    states: dict[str, int] = {}
    for r in rows:
        if not r["requeued"]:
            states[r["state"]] = states.get(r["state"], 0) + 1
    if as_json:
        click.echo(
            json.dumps(
                {
                    "study": name,
                    "objectives": list(config.objectives),
                    "directions": config.directions,
                    "sampler": config.sampler,
                    "trials": states,
                    "duration_s": took,
                    "storage": opt.storage_url(settings.db_url)[0].split("@")[-1],
                    "best": best_rows,
                    "space": {k: v.as_dict() for k, v in space.items()},
                }
            )
        )
    else:
        _report(name, config, best_rows[:top], states, took, sorted(opt.searched(space, config.fixed)))
    if not best_rows:
        sys.exit(1)


def _report(
    name: str, config: Any, rows: list[dict[str, Any]], states: dict[str, int], took: float, names: list[str]
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    what = "Pareto front" if len(config.objectives) > 1 else "best trial"
    t = Table(title=f"study {name}: {what} by {', '.join(config.objectives)} ({took:.1f} s)")
    for col in ("trial", *names, *config.objectives, "return %", "max dd %", "sharpe", "trades", "worker"):
        t.add_column(col, justify="right")
    for r in rows:
        mt = r["metrics"]
        cells = [str(r["number"]), *(str(r["params"].get(k)) for k in names)]
        cells += [f"{v:.4g}" for v in r["values"]]
        cells += [
            f"{mt.get('return_pct', 0):+.2f}",
            f"{mt.get('max_drawdown_pct', 0):.2f}",
            f"{mt.get('sharpe', 0):.2f}",
            str(mt.get("trade_count", "")),
            r["worker"] or "",
        ]
        t.add_row(*cells)
    console.print(t)
    console.print("trials: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    if rows:
        best = rows[0]
        console.print("best parameters: " + " ".join(f"--param {k}={best['params'][k]}" for k in names))
