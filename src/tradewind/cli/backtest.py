"""`tradewind backtest`: one run, a parameter sweep, or a quoting strategy's run, over a candle file or a
stored market (the work is ``tradewind.backtest``'s)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli import candles as source
from tradewind.cli.context import open_storage, read_settings_if
from tradewind.domain import TIMEFRAMES

if TYPE_CHECKING:
    from tradewind.config import Settings

# The heavy imports (the sandbox, SQLAlchemy, numpy) happen inside the command: `tradewind --help` and
# every other command start faster, and a backtest from a file never loads the database layer.


@click.command("backtest")
@click.argument("strategy", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A candle file (CSV, Parquet, freqtrade JSON/feather, Gekko CSV).",
)
@click.option(
    "--market",
    "market",
    help="A stored market: its id (see `tradewind data list`) or EXCHANGE:SYMBOL; read from the history store "
    "(Parquet) when it holds the market, else from the database.",
)
@click.option("--timeframe", type=click.Choice(list(TIMEFRAMES)), default="1m", show_default=True)
@click.option("--from", "start", help="Start time (ISO 8601 or epoch ms), with --market.")
@click.option("--to", "end", help="End time (exclusive), with --market.")
@click.option("--param", "params", multiple=True, help="A strategy parameter, name=value; repeatable.")
@click.option(
    "--fee",
    type=click.FloatRange(0, 0.1),
    default=0.001,
    show_default=True,
    help="The taker fee, a fraction: market entries, signal exits, stops.",
)
@click.option(
    "--maker-fee",
    type=click.FloatRange(0, 0.1),
    default=None,
    help="The maker fee, a fraction: limit entries, take-profits.  [default: --fee]",
)
@click.option("--cash", type=click.FloatRange(min=0, min_open=True), default=10_000.0, show_default=True)
@click.option(
    "--slippage-bps",
    type=click.FloatRange(0, 1000),
    default=None,
    help="Slippage on market and stop fills, in basis points.  [default: 0]",
)
@click.option(
    "--slippage",
    type=click.FloatRange(0, 0.1),
    default=None,
    help="The same as a fraction of the price (0.0005 = 5 bps); not with --slippage-bps.",
)
@click.option("--lookback", type=click.IntRange(1, 100_000), default=500, show_default=True)
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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def backtest(
    strategy: Path,
    data_file: Path | None,
    market: str | None,
    timeframe: str,
    start: str | None,
    end: str | None,
    params: tuple[str, ...],
    fee: float,
    maker_fee: float | None,
    cash: float,
    slippage_bps: float | None,
    slippage: float | None,
    lookback: int,
    sweeps: tuple[str, ...],
    rank_by: str,
    top: int,
    workers: int | None,
    trigger: str | None,
    on_ticks: bool,
    spread_bps: float,
    max_position: float | None,
    min_interval_ms: int,
    as_json: bool,
) -> None:
    """Run STRATEGY.lua over history with the live fill rule; exit status 1 if the strategy failed.

    With --sweep, run every point of the parameter grid on the backtest workers and rank them. A quoting
    strategy (on_tick) is run on candle closes (an approximation) or, with --ticks, on stored ticks."""
    settings = read_settings_if(market is not None or bool(sweeps))  # a sweep reads TRADEWIND_NATS_URL
    from tradewind.backtest import engine
    from tradewind.backtest.quotes import quoting

    source.one_source(data_file, market)
    if slippage is not None and slippage_bps is not None:
        raise click.UsageError("give --slippage-bps or --slippage (a fraction), not both")
    if on_ticks and trigger == "candle":
        raise click.UsageError("--ticks runs on_tick: not with --trigger candle")
    if on_ticks and market is None:
        raise click.UsageError("--ticks reads the ticks stored for a market: give --market, not --data")
    slippage = slippage_bps / 10_000 if slippage_bps is not None else slippage or 0.0
    code = strategy.read_text()
    t0, t1 = source.parse_times(start, end)
    quote_mode = on_ticks or quoting(code, strategy.stem, trigger)
    if quote_mode:
        if sweeps:
            raise click.UsageError(
                "--sweep runs strategies on candles (decide); not a quoting strategy (on_tick)"
            )
        _quote_backtest(
            settings,
            code,
            strategy,
            data_file,
            market,
            timeframe,
            t0,
            t1,
            source.parse_params(params),
            fee,
            maker_fee,
            cash,
            slippage,
            lookback,
            on_ticks,
            spread_bps,
            max_position,
            min_interval_ms,
            as_json,
        )
        return
    if sweeps:
        assert settings is not None
        _refuse_what_does_not_load(code, strategy.stem)
        market_id = source.market_id(settings, market) if market is not None else None
        _sweep(
            settings,
            code,
            strategy.stem,
            data_file,
            market_id,
            timeframe,
            t0,
            t1,
            source.parse_params(params),
            sweeps,
            fee,
            cash,
            slippage,
            lookback,
            rank_by,
            top,
            workers,
            as_json,
            maker_fee,
        )
        return
    arrays = source.candles(settings, data_file, market, timeframe, t0, t1)
    kw = dict(
        params=source.parse_params(params),
        cash=cash,
        fee=fee,
        maker_fee=maker_fee,
        slippage=slippage,
        lookback=lookback,
        name=strategy.stem,
    )
    if as_json or len(arrays["time"]) < 20_000:
        result = engine.run(code, arrays, **kw)  # type: ignore[arg-type]
    else:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("backtest"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,} candles"),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("run", total=len(arrays["time"]))
            result = engine.run(code, arrays, progress=lambda i, n: bar.update(task, completed=i), **kw)  # type: ignore[arg-type]
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary))
    elif result.error:  # the error alone: no metrics of a run that did not finish
        _failed(result.error)
    else:
        _report(summary, strategy.name)
    if result.error:
        sys.exit(1)


def _failed(error: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]The strategy failed:[/] {error}", highlight=False, soft_wrap=True)


def _refuse_what_does_not_load(code: str, name: str) -> None:
    """A strategy that does not compile or whose top level fails would fail every point of a sweep the
    same way: said once, before any worker starts (parameters reach only ``init`` and ``decide``)."""
    from tradewind.sandbox.runtime import StrategyError, StrategyRuntime

    try:
        StrategyRuntime(code, name=name, run_init=False).close()
    except StrategyError as exc:
        _failed(str(exc))
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
    code: str,
    strategy: Path,
    data_file: Path | None,
    market: str | None,
    timeframe: str,
    t0: int | None,
    t1: int | None,
    params: dict[str, Any],
    fee: float,
    maker_fee: float | None,
    cash: float,
    slippage: float,
    lookback: int,
    on_ticks: bool,
    spread_bps: float,
    max_position: float | None,
    min_interval_ms: int,
    as_json: bool,
) -> None:
    """A quoting strategy's backtest (``backtest.quotes``), on candle closes or on stored ticks."""
    from tradewind.backtest import quotes
    from tradewind.domain import tf_ms

    kw: dict[str, Any] = dict(
        params=params,
        cash=cash,
        fee=fee,
        maker_fee=maker_fee,
        slippage=slippage,
        lookback=lookback,
        name=strategy.stem,
        max_position=max_position,
    )
    if on_ticks:
        assert settings is not None and market is not None
        market_id = source.market_id(settings, market)
        candles, ticks = asyncio.run(_db_ticks(settings, market_id, timeframe, t0, t1, lookback))
        n, unit = len(ticks["time"]), "ticks"

        def go(progress: Any = None) -> quotes.QuoteResult:
            return quotes.run_ticks(
                code,
                candles,
                ticks,
                min_interval_ms=min_interval_ms,
                tf_ms=tf_ms(timeframe),
                progress=progress,
                **kw,
            )
    else:
        arrays = source.candles(settings, data_file, market, timeframe, t0, t1)
        n, unit = len(arrays["time"]), "candles"

        def go(progress: Any = None) -> quotes.QuoteResult:
            return quotes.run_candles(code, arrays, spread_bps=spread_bps, progress=progress, **kw)

    if as_json or n < 20_000:
        result = go()
    else:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("backtest"),
            BarColumn(),
            TextColumn(f"{{task.completed:,}}/{{task.total:,}} {unit}"),
            TimeRemainingColumn(),
            transient=True,
        ) as bar:
            task = bar.add_task("run", total=n)
            result = go(lambda i, _n: bar.update(task, completed=i))
    summary = result.summary()
    if as_json:
        click.echo(json.dumps(summary))
    elif result.error:
        _failed(result.error)
    else:
        _quote_report(summary, strategy.name)
    if result.error:
        sys.exit(1)


def _sweep(
    settings: Settings,
    code: str,
    name: str,
    data_file: Path | None,
    market_id: int | None,
    timeframe: str,
    t0: int | None,
    t1: int | None,
    fixed: dict[str, Any],
    specs: tuple[str, ...],
    fee: float,
    cash: float,
    slippage: float,
    lookback: int,
    rank_by: str,
    top: int,
    workers: int | None,
    as_json: bool,
    maker_fee: float | None,
) -> None:
    import logging
    import os
    import time

    from tradewind.backtest import sweep
    from tradewind.bus.messages import BacktestData

    try:
        points = sweep.grid(fixed, [sweep.parse_sweep(s) for s in specs])
    except sweep.SweepError as exc:
        raise click.BadParameter(str(exc), param_hint="--sweep") from None
    if data_file is not None:
        data = BacktestData(path=str(data_file.resolve()), tf=timeframe)
        if settings.nats_url:  # remote workers cannot read our file: send the candles when they fit a message
            data = inline(data_file, timeframe) or data
    else:
        data = BacktestData(market_id=market_id, tf=timeframe, start=t0, end=t1)
    n = workers or os.cpu_count() or 2
    logging.getLogger("tradewind.bus.connection").setLevel(
        logging.ERROR
    )  # closing our own clients is no news
    where = settings.nats_url or f"{n} local worker(s)"
    started = time.perf_counter()

    async def go(progress: Any = None) -> list[sweep.Point]:
        return await sweep.run(
            code,
            data,
            points,
            name=name,
            cash=cash,
            fee=fee,
            maker_fee=maker_fee,
            slippage=slippage,
            lookback=lookback,
            nats_url=settings.nats_url,
            workers=n,
            db_url=None if data_file else settings.db_url,
            progress=progress,
        )

    try:
        if as_json:
            results = asyncio.run(go())
        else:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn(f"sweep on {where}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            ) as bar:
                task = bar.add_task("sweep", total=len(points))
                results = asyncio.run(go(lambda i, _n: bar.update(task, completed=i)))
    except sweep.SweepError as exc:
        raise click.ClickException(str(exc)) from None
    ranked = sweep.rank(results, rank_by)
    used = sweep.workers_used(results)
    took = sweep.elapsed(started)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "rank_by": rank_by,
                    "points": len(points),
                    "duration_s": took,
                    "workers": used,
                    "results": [p.row() for p in ranked],
                }
            )
        )
    else:
        _sweep_report(ranked[:top], rank_by, len(points), took, used)
    if all(p.error for p in results):
        sys.exit(1)


def inline(path: Path, timeframe: str) -> Any:
    """A candle file's candles to send with each job to workers on a bus (``sweep.inline_data``), or None
    (said on stderr) when they are too large for a message and the workers read the file themselves."""
    from tradewind.backtest.importers import ImportError_
    from tradewind.backtest.sweep import inline_data

    try:
        data = inline_data(path, timeframe)
    except ImportError_ as exc:
        raise click.ClickException(str(exc)) from None
    if data is None:
        click.echo(
            f"{path.name} is too large to send with each job: the workers read it at {path.resolve()}",
            err=True,
        )
    return data


def _sweep_report(points: list[Any], rank_by: str, total: int, took: float, used: dict[str, int]) -> None:
    from rich.console import Console
    from rich.table import Table

    names = list(points[0].params) if points else []
    t = Table(title=f"{total:,} points ranked by {rank_by} ({took:.1f} s)")
    for col in ("#", *names, "final equity", "return %", "max dd %", "sharpe", "win %", "trades", "worker"):
        t.add_column(col, justify="right")
    for i, p in enumerate(points, start=1):
        r = p.row()
        cells = [str(i), *(str(p.params[k]) for k in names)]
        if p.error:
            cells += [f"[red]{p.error[:60]}[/]", "", "", "", "", "", p.worker]
        else:
            cells += [
                f"{r['final_equity']:,.2f}",
                f"{r['return_pct']:+.2f}",
                f"{r['max_drawdown_pct']:.2f}",
                f"{r['sharpe']:.2f}",
                f"{r['win_rate']:.1f}",
                str(r["trade_count"]),
                p.worker,
            ]
        t.add_row(*cells)
    console = Console()
    console.print(t)
    console.print("workers: " + ", ".join(f"{w} ran {k}" for w, k in sorted(used.items())))


def _quote_report(s: dict[str, Any], name: str) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    steps = f"{s['candles']:,} candles" if "candles" in s else f"{s['ticks']:,} ticks"
    console.print(f"mode: {s['label']}", highlight=False, soft_wrap=True)
    t = Table(title=f"{name}: quoting, {steps} in {s['duration_s']:.2f} s", show_header=False)
    placed, fills = s["quotes_placed_by_side"], s["fills"]
    for label, value in (
        ("evaluations", f"{s['evaluations']:,}"),
        ("quotes placed", f"{s['quotes_placed']:,} (buy {placed['buy']:,}, sell {placed['sell']:,})"),
        ("refused (would take)", f"{s['quotes_refused']:,}"),
        ("fills", f"buy {fills['buy']:,}, sell {fills['sell']:,}"),
        ("fill rate", f"{s['fill_rate_pct']:.1f} %"),
        ("market orders", f"{s['market_orders']:,}"),
        ("final inventory", f"{s['final_inventory']:.8g}"),
        ("realized P&L", f"{s['realized_pnl']:+,.2f}"),
        ("fees", f"{s['fees']:,.2f}"),
        ("final equity", f"{s['final_equity']:,.2f}"),
        ("return", f"{s['return_pct']:+.2f} %"),
        ("max drawdown", f"{s['max_drawdown_pct']:.2f} %"),
    ):
        t.add_row(label, value)
    console.print(t)
    fills_ = s["trades"][-10:]
    if fills_:
        tt = Table(
            title="last fills (UTC)",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_edge=False,
            collapse_padding=True,
        )
        for col in ("time", "side", "price", "amount", "fee", "pnl"):
            tt.add_column(col, justify="right", no_wrap=True)
        for f in fills_:
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
    from rich.table import Table

    console = Console()
    t = Table(title=f"{name}: {s['candles']:,} candles in {s['duration_s']:.2f} s", show_header=False)
    for label, value in (
        ("final equity", f"{s['final_equity']:,.2f}"),
        ("return", f"{s['return_pct']:+.2f} %"),
        ("max drawdown", f"{s['max_drawdown_pct']:.2f} %"),
        ("sharpe", f"{s['sharpe']:.2f}"),
        ("trades", str(len(s["trades"]))),
        ("exits", exit_counts(s["trades"])),
        ("win rate", f"{s['win_rate']:.1f} %"),
    ):
        t.add_row(label, value)
    console.print(t)
    trades = s["trades"][-10:]
    if trades:
        from rich import box

        # (no edges, two spaces between columns: the six columns fit in 80)
        tt = Table(
            title="last trades (UTC)",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_edge=False,
            collapse_padding=True,
        )
        for col in ("entry", "price", "exit", "price", "by", "pnl"):  # (quantities are in --json)
            tt.add_column(col, justify="right", no_wrap=True)

        def short(
            iso_time: str | None,
        ) -> str:  # "2018-01-27T21:35:00Z" -> "2018-01-27 21:35": fits 80 columns
            return iso_time[:16].replace("T", " ") if iso_time else "open"

        for x in trades:
            tt.add_row(
                short(x["entry_time"]),
                f"{x['entry_price']:.6g}",
                short(x["exit_time"]),
                f"{x['exit_price']:.6g}" if x["exit_price"] else "",
                BY.get(x.get("exit_reason") or "", ""),
                f"{x['pnl']:+.2f}" if x["pnl"] is not None else "",
            )
        console.print(tt)


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
