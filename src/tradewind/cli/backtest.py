"""`tradewind backtest`: one run, a parameter sweep, or a quoting strategy's run, over a candle file or a
stored market (the work is ``tradewind.backtest``'s)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli import candles as source
from tradewind.cli.context import open_storage, read_settings_if
from tradewind.cli.options import Run, local_workers, run_options
from tradewind.cli.report import equity_rows, facts, failed, listing, metric_cells, table, with_progress

if TYPE_CHECKING:
    from tradewind.config import Settings

# The heavy imports (the sandbox, SQLAlchemy, numpy) happen inside the command: `tradewind --help` and
# every other command start faster, and a backtest from a file never loads the database layer.

#: A run of this many candles or ticks and more shows a progress bar (unless --json).
BAR_FROM = 20_000


@click.command("backtest")
@run_options(fraction=True)
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    help="Sweep a parameter: name=FROM..TO[:STEP] or name=A,B,C; repeatable (a grid).",
)
@click.option(
    "--rank",
    "rank_by",
    type=click.Choice(["final_equity", "return_pct", "sharpe", "win_rate", "max_drawdown_pct"]),
    default="final_equity",
    show_default=True,
    help="How a sweep ranks its points.",
)
@click.option(
    "--top",
    type=click.IntRange(1),
    default=20,
    show_default=True,
    help="Sweep points shown (all with --json).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Local workers for a sweep without TRADEWIND_NATS_URL (default: CPU count).",
)
@click.option(
    "--trigger",
    type=click.Choice(["candle", "tick"]),
    default=None,
    help="Run decide on candles, or on_tick and its quotes.  [default: tick for a strategy with "
    "on_tick and no decide]",
)
@click.option(
    "--ticks",
    "on_ticks",
    is_flag=True,
    help="Quoting: run on_tick on the ticks stored for --market (else on candle closes).",
)
@click.option(
    "--spread-bps",
    type=click.FloatRange(0, 1000),
    default=2.0,
    show_default=True,
    help="Quoting on candles: the spread of the book assumed around each close.",
)
@click.option(
    "--max-position",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Quoting: the most base held; a buy quote is cut to what is left below it.",
)
@click.option(
    "--min-interval-ms",
    type=click.IntRange(100, 3_600_000),
    default=1000,
    show_default=True,
    help="Quoting on ticks: at most one on_tick per this many milliseconds.",
)
def backtest(
    run: Run,
    sweeps: tuple[str, ...],
    rank_by: str,
    top: int,
    workers: int | None,
    trigger: str | None,
    on_ticks: bool,
    spread_bps: float,
    max_position: float | None,
    min_interval_ms: int,
) -> None:
    """Run STRATEGY.lua over history with the live fill rule; exit status 1 if the strategy failed.

    With --sweep, run every point of the parameter grid on the backtest workers and rank them. A quoting
    strategy (on_tick) is run on candle closes (an approximation) or, with --ticks, on stored ticks."""
    settings = read_settings_if(run.market is not None or bool(sweeps))  # a sweep reads TRADEWIND_NATS_URL
    from tradewind.backtest import engine
    from tradewind.backtest.quotes import quoting

    run.one_source()
    run.slippage()  # --slippage-bps or --slippage, checked before anything runs
    if on_ticks and trigger == "candle":
        raise click.UsageError("--ticks runs on_tick: not with --trigger candle")
    if on_ticks and run.market is None:
        raise click.UsageError("--ticks reads the ticks stored for a market: give --market, not --data")
    code = run.strategy.read_text()
    run.times()  # a bad --from/--to, before anything runs
    if on_ticks or quoting(code, run.name, trigger):
        if sweeps:
            raise click.UsageError(
                "--sweep runs strategies on candles (decide); not a quoting strategy (on_tick)"
            )
        _quote_backtest(settings, run, code, on_ticks, spread_bps, max_position, min_interval_ms)
        return
    if sweeps:
        assert settings is not None
        _refuse_what_does_not_load(code, run.name)
        _sweep(settings, run, code, sweeps, rank_by, top, workers)
        return
    arrays = run.candles(settings)
    n = len(arrays["time"])
    result = with_progress(
        lambda progress: engine.run(
            code,
            arrays,
            params=run.fixed(),
            name=run.name,
            progress=progress,
            unhooked_first=True,  # (the process ends after the run)
            **run.costs(),
        ),
        "backtest",
        n,
        shown=not run.as_json and n >= BAR_FROM,
        unit="candles",
    )
    _show(run, result.summary(), result.error, _report)


def _show(
    run: Run, summary: dict[str, Any], error: str | None, report: Callable[[dict[str, Any], str], None]
) -> None:
    """A run's JSON document, its error alone (no metrics of a run that did not finish), or its report;
    exit status 1 when it failed."""
    if run.as_json:
        click.echo(json.dumps(summary))
    elif error:
        failed(error)
    else:
        report(summary, run.strategy.name)
    if error:
        sys.exit(1)


def _refuse_what_does_not_load(code: str, name: str) -> None:
    """A strategy that does not compile or whose top level fails would fail every point of a sweep the
    same way: said once, before any worker starts (parameters reach only ``init`` and ``decide``)."""
    from tradewind.sandbox.runtime import StrategyError, StrategyRuntime

    try:
        StrategyRuntime(code, name=name, run_init=False).close()
    except StrategyError as exc:
        failed(str(exc))
        sys.exit(1)


async def _db_ticks(
    settings: Settings, market_id: int, tf: str, start: int | None, end: int | None, lookback: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored ticks of a market in [start, end) and its candles from ``lookback`` candles before them."""
    from tradewind.backtest.quotes import stored_tick_data

    async with open_storage(settings) as sf:
        async with sf() as s:
            candles, ticks = await stored_tick_data(s, market_id, tf, start, end, lookback)
    if not len(ticks["time"]):
        raise click.ClickException(f"no ticks stored for market {market_id} in that range")
    if candles is None:
        raise click.ClickException(
            f"no {tf} candles stored for market {market_id} around its ticks: on_tick's window needs them "
            "(see `tradewind data list`)"
        )
    return candles, ticks


def _quote_backtest(
    settings: Settings | None,
    run: Run,
    code: str,
    on_ticks: bool,
    spread_bps: float,
    max_position: float | None,
    min_interval_ms: int,
) -> None:
    """A quoting strategy's backtest (``backtest.quotes``), on candle closes or on stored ticks."""
    from tradewind.backtest import quotes
    from tradewind.domain import tf_ms

    ticks: dict[str, Any] | None = None
    if on_ticks:
        assert settings is not None and run.market is not None
        market_id = source.market_id(settings, run.market)
        candles, ticks = asyncio.run(
            _db_ticks(settings, market_id, run.timeframe, *run.times(), run.lookback)
        )
        n, unit = len(ticks["time"]), "ticks"
    else:
        candles = run.candles(settings)
        n, unit = len(candles["time"]), "candles"
    result = with_progress(
        lambda progress: quotes.run(
            code,
            candles,
            ticks,
            spread_bps=spread_bps,
            min_interval_ms=min_interval_ms,
            tf_ms=tf_ms(run.timeframe),
            max_position=max_position,
            params=run.fixed(),
            name=run.name,
            progress=progress,
            **run.costs(),
        ),
        "backtest",
        n,
        shown=not run.as_json and n >= BAR_FROM,
        unit=unit,
    )
    _show(run, result.summary(), result.error, _quote_report)


def _sweep(
    settings: Settings,
    run: Run,
    code: str,
    specs: tuple[str, ...],
    rank_by: str,
    top: int,
    workers: int | None,
) -> None:
    import time

    from tradewind.backtest import sweep

    try:
        points = sweep.grid(run.fixed(), [sweep.parse_sweep(s) for s in specs])
    except sweep.SweepError as exc:
        raise click.BadParameter(str(exc), param_hint="--sweep") from None
    data = run.job_data(settings)
    n, where = local_workers(settings, workers)
    started = time.perf_counter()
    try:
        results = with_progress(
            lambda progress: asyncio.run(
                sweep.run(
                    code,
                    data,
                    points,
                    name=run.name,
                    nats_url=settings.nats_url,
                    workers=n,
                    db_url=None if run.data_file else settings.db_url,
                    progress=progress,
                    **run.costs(),
                )
            ),
            f"sweep on {where}",
            len(points),
            shown=not run.as_json,
        )
    except sweep.SweepError as exc:
        raise click.ClickException(str(exc)) from None
    ranked_points = sweep.rank(results, rank_by)
    used = sweep.workers_used(results)
    took = sweep.elapsed(started)
    if run.as_json:
        click.echo(
            json.dumps(
                {
                    "rank_by": rank_by,
                    "points": len(points),
                    "duration_s": took,
                    "workers": used,
                    "results": [p.row() for p in ranked_points],
                }
            )
        )
    else:
        _sweep_report(ranked_points[:top], rank_by, len(points), took, used)
    if all(p.error for p in results):
        sys.exit(1)


def _sweep_report(points: list[Any], rank_by: str, total: int, took: float, used: dict[str, int]) -> None:
    from rich.console import Console

    names = list(points[0].params) if points else []
    t = table(
        f"{total:,} points ranked by {rank_by} ({took:.1f} s)",
        ("#", *names, "final equity", "return %", "max dd %", "sharpe", "win %", "trades", "worker"),
    )
    for i, p in enumerate(points, start=1):
        r = p.row()
        cells = [str(i), *(str(p.params[k]) for k in names)]
        if p.error:
            cells += [f"[red]{p.error[:60]}[/]", "", "", "", "", "", p.worker]
        else:
            cells += [
                f"{r['final_equity']:,.2f}",
                *metric_cells(r),
                f"{r['win_rate']:.1f}",
                str(r["trade_count"]),
                p.worker,
            ]
        t.add_row(*cells)
    console = Console()
    console.print(t)
    console.print("workers: " + ", ".join(f"{w} ran {k}" for w, k in sorted(used.items())))


def _quote_report(s: dict[str, Any], name: str) -> None:
    from rich.console import Console

    console = Console()
    steps = f"{s['candles']:,} candles" if "candles" in s else f"{s['ticks']:,} ticks"
    console.print(f"mode: {s['label']}", highlight=False, soft_wrap=True)
    placed, fills = s["quotes_placed_by_side"], s["fills"]
    rows = [
        ("evaluations", f"{s['evaluations']:,}"),
        ("quotes placed", f"{s['quotes_placed']:,} (buy {placed['buy']:,}, sell {placed['sell']:,})"),
        ("refused (would take)", f"{s['quotes_refused']:,}"),
        ("fills", f"buy {fills['buy']:,}, sell {fills['sell']:,}"),
        ("fill rate", f"{s['fill_rate_pct']:.1f} %"),
        ("market orders", f"{s['market_orders']:,}"),
        ("final inventory", f"{s['final_inventory']:.8g}"),
        ("realized P&L", f"{s['realized_pnl']:+,.2f}"),
        ("fees", f"{s['fees']:,.2f}"),
        *equity_rows(s),
    ]
    console.print(facts(f"{name}: quoting, {steps} in {s['duration_s']:.2f} s", rows))
    if s["trades"]:
        tt = listing("last fills (UTC)", ("time", "side", "price", "amount", "fee", "pnl"))
        for f in s["trades"][-10:]:
            side = f["side"] if f["kind"] == "quote" else f"{f['side']} (market)"
            tt.add_row(
                f["time"][:19].replace("T", " "),
                side,
                f"{f['price']:.6g}",
                f"{f['amount']:.8g}",
                f"{f['fee']:.4g}",
                f"{f['pnl']:+.2f}" if f["pnl"] is not None else "",
            )
        console.print(tt)
    for note in s["notes"]:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def _report(s: dict[str, Any], name: str) -> None:
    from rich.console import Console

    console = Console()
    rows = [
        *equity_rows(s),
        ("sharpe", f"{s['sharpe']:.2f}"),
        ("trades", str(len(s["trades"]))),
        ("exits", exit_counts(s["trades"])),
        ("win rate", f"{s['win_rate']:.1f} %"),
    ]
    console.print(facts(f"{name}: {s['candles']:,} candles in {s['duration_s']:.2f} s", rows))
    if s["trades"]:
        tt = listing(
            "last trades (UTC)", ("entry", "price", "exit", "price", "by", "pnl")
        )  # quantities: --json
        for x in s["trades"][-10:]:
            tt.add_row(
                _minute(x["entry_time"]),
                f"{x['entry_price']:.6g}",
                _minute(x["exit_time"]),
                f"{x['exit_price']:.6g}" if x["exit_price"] else "",
                BY.get(x.get("exit_reason") or "", ""),
                f"{x['pnl']:+.2f}" if x["pnl"] is not None else "",
            )
        console.print(tt)


def _minute(iso_time: str | None) -> str:
    """ "2018-01-27T21:35:00Z" -> "2018-01-27 21:35" (the trades table fits 80 columns); "open" for None."""
    return iso_time[:16].replace("T", " ") if iso_time else "open"


#: Exit reasons as the tables name them (--json gives the model's names: stop_loss, take_profit, ...).
BY = {
    "signal": "signal",
    "stop_loss": "stop",
    "take_profit": "target",
    "trailing_stop": "trail",
    "end": "end",
}


def exit_counts(trades: list[dict[str, Any]]) -> str:
    """The trades by exit reason, most first: ``12 signal, 3 stop, 1 end``."""
    from collections import Counter

    counts = Counter(BY.get(t.get("exit_reason") or "end", t.get("exit_reason")) for t in trades)
    return ", ".join(f"{k} {reason}" for reason, k in counts.most_common()) or "-"
