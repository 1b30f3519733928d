"""`tradewind bench latency` (the work is ``tradewind.bench.latency``'s)."""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path

import click

from tradewind.cli.context import check_settings


@click.group()
def bench() -> None:
    """Benchmarks that drive a known load through the platform."""


@bench.command("latency", context_settings={"show_default": True})
@click.option("--assignments", default="10,100,1000", help="Comma-separated loads.")
@click.option("--markets", default=1, type=click.IntRange(1, 8))
@click.option("--workers", default=1, type=click.IntRange(1, 16), help="Eval workers.")
@click.option("--candles", default=20, type=click.IntRange(2, 1000), help="Candles measured per load.")
@click.option(
    "--candle-interval",
    "interval",
    default=1.0,
    type=click.FloatRange(0.2, 60),
    help="Seconds between the sim's one-minute candles (a larger load may need longer to keep up).",
)
@click.option(
    "--trigger",
    type=click.Choice(["candle", "tick"]),
    default="candle",
    help="tick: quoting assignments on the sim's ticks (one a second per market); --candles is then seconds.",
)
@click.option(
    "--window",
    default=0,
    type=click.IntRange(0, 1000),
    help="Also print p50/p99 for each window of this many candles (drift over a long run); 0: off.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG plot."
)
def latency(
    assignments: str,
    markets: int,
    workers: int,
    candles: int,
    interval: float,
    trigger: str,
    window: int,
    as_json: bool,
    plot_path: Path | None,
) -> None:
    """Tick -> order-call latency (p50/p99/max) and evaluations/s against the number of assignments."""
    check_settings()  # the bench builds its own from them (a data folder of its own), once it starts
    from tradewind.bench import latency as lat

    try:
        loads = [int(x) for x in assignments.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            "a comma-separated list of whole numbers, e.g. 10,100,1000", param_hint="--assignments"
        ) from None
    if not loads or any(n < 1 or n > 100_000 for n in loads):
        raise click.BadParameter("each load must be between 1 and 100000", param_hint="--assignments")
    logging.basicConfig(level=logging.WARNING)
    say = None if as_json else (lambda text: click.echo(text, err=True))
    try:
        results = lat.run(
            lat.run_latency(
                loads,
                markets=markets,
                workers=workers,
                candles=candles,
                speed=60.0 / interval,
                progress=say,
                trigger=trigger,
                window=window,
            )
        )
    except lat.BenchRefused as exc:
        raise click.ClickException(str(exc)) from None
    if plot_path:
        every = f", a candle every {interval:g} s" if interval != 1.0 and trigger == "candle" else ""
        every += ", quoting on ticks (one a second)" if trigger == "tick" else ""
        lat.plot(
            results, plot_path, f"{markets} market(s), {workers} eval worker(s){every}, {platform.node()}"
        )
    if as_json:
        click.echo(json.dumps(lat.as_json(results)))
        return
    click.echo(f"{'assignments':>12} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'evals/s':>9} {'orders':>7}")
    for r in results:
        click.echo(
            f"{r.assignments:>12} {r.p50_ms:>8} {r.p99_ms:>8} {r.max_ms:>8} {r.evaluations_per_s:>9} {r.orders:>7}"
        )
    for r in results:
        for start, p50, p99 in r.windows:
            click.echo(
                f"{r.assignments:>12} candles {start}-{start + window - 1}: p50 {p50} ms, p99 {p99} ms"
            )
