"""`tradewind optimize`: an Optuna study of a strategy's declared parameters, run on the backtest workers (the
work is ``tradewind.backtest.optimize``'s)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from typing import Any

import click

from tradewind.cli.context import read_settings
from tradewind.cli.options import Run, local_workers, run_options
from tradewind.cli.report import metric_cells, progress_bar, table


@click.command("optimize")
@run_options(param_help="Fix a parameter, name=value (not searched); repeatable.")
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
def optimize(
    run: Run,
    trials: int,
    objective: str,
    sampler: str | None,
    study_name: str | None,
    resume: bool,
    prune: bool,
    seed: int | None,
    workers: int | None,
    parallel: int | None,
    worker_timeout: float,
    top: int,
) -> None:
    """Search STRATEGY.lua's declared parameters (its top-level `params = {...}`) for the best OBJECTIVE.

    The study is kept in the database of the current settings (TRADEWIND_DATA_DIR / TRADEWIND_DATABASE_URL),
    so `--study NAME --resume` goes on with it after an interruption."""
    settings = read_settings()  # the study is kept in its database
    import time

    from tradewind.backtest import optimize as opt
    from tradewind.backtest import sweep
    from tradewind.sandbox.runtime import StrategyError

    run.one_source()
    if resume and not study_name:
        raise click.UsageError("--resume needs --study NAME")
    objectives = opt.parse_objectives(objective)
    try:
        config = run.study_config(objectives, sampler or opt.default_sampler(objectives), prune, seed)
    except opt.OptimizeError as exc:
        raise click.BadParameter(str(exc), param_hint="--objective/--sampler") from None
    code = run.strategy.read_text()
    try:
        space = opt.declared_space(code, run.name)
    except StrategyError as exc:
        raise click.ClickException(str(exc)) from None
    n_candles = len(run.candles(settings)["time"])
    data = run.job_data(settings)
    name = study_name or f"{run.name}-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}"
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
    n, where = local_workers(settings, workers)
    lanes = parallel or (n if settings.nats_url is None else 4)
    job = opt.Job(code=code, data=data, name=run.name, config=config)
    started = time.perf_counter()

    async def go(progress: Any = None) -> int:
        from tradewind.bus.connection import connect

        async with sweep.LocalWorkers(
            settings.nats_url, n, None if run.data_file else settings.db_url
        ) as url:
            nc = await connect(url, f"optimize-{name[:40]}")
            try:
                runner = opt.BusRunner(nc, job, worker_timeout_s=worker_timeout)
                driver = opt.Optimizer(study, space, config, runner, n_candles, progress=progress)
                return await driver.run(trials, lanes)
            finally:
                await nc.close()

    try:
        if run.as_json:
            asyncio.run(go())
        else:
            done = sum(1 for t in study.get_trials(deepcopy=False) if opt.counted(t))
            with progress_bar(
                f"study {name} on {where}", trials, completed=min(done, trials), note=True
            ) as update:
                asyncio.run(go(lambda p: update(p.finished, note=f"best {p.best}" if p.best else "")))
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
    if run.as_json:
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
        repeats = sum(1 for r in rows if r["same_as"] is not None)
        _report(
            name, config, best_rows[:top], states, took, sorted(opt.searched(space, config.fixed)), repeats
        )
    if not best_rows:
        sys.exit(1)


def _report(
    name: str,
    config: Any,
    rows: list[dict[str, Any]],
    states: dict[str, int],
    took: float,
    names: list[str],
    repeats: int = 0,
    console: Any = None,
) -> None:
    from rich.console import Console

    console = console or Console()
    what = "Pareto front" if len(config.objectives) > 1 else "best trial"
    t = table(
        f"study {name}: {what} by {', '.join(config.objectives)} ({took:.1f} s)",
        ("trial", *names, *config.objectives, "return %", "max dd %", "sharpe", "trades", "worker"),
    )
    for r in rows:
        mt = r["metrics"]
        t.add_row(
            str(r["number"]),
            *(str(r["params"].get(k)) for k in names),
            *(f"{v:.4g}" for v in r["values"]),
            *metric_cells(mt),
            str(mt.get("trade_count", "")),
            f"same as #{r['same_as']}" if r["same_as"] is not None else r["worker"] or "",
        )
    console.print(t)
    console.print("trials: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    if repeats:
        console.print(f"{repeats} of them repeated an earlier trial's parameters and took its results")
    if rows:
        best = rows[0]
        console.print("best parameters: " + " ".join(f"--param {k}={best['params'][k]}" for k in names))
