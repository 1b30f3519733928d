"""What the research commands (backtest, optimize, walkforward, check) are given the same way: the strategy,
its candles (``--data FILE`` or ``--market``, ``--timeframe``, ``--from``/``--to``), its parameters and the
costs of every run, defined once (``run_options``) and handed to the command as one ``Run``."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tradewind.cli import candles as source
from tradewind.domain import TIMEFRAMES

if TYPE_CHECKING:
    from tradewind.backtest.optimize import StudyConfig
    from tradewind.bus.messages import BacktestData
    from tradewind.config import Settings

PARAM_HELP = "A strategy parameter, name=value; repeatable."
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@dataclasses.dataclass(frozen=True)
class Run:
    """A research command's strategy, where its candles come from, and what every backtest of it is given."""

    strategy: Path
    data_file: Path | None
    market: str | None
    timeframe: str
    start: str | None
    end: str | None
    params: tuple[str, ...]
    fee: float
    maker_fee: float | None
    cash: float
    slippage_bps: float | None
    lookback: int
    as_json: bool
    fraction: float | None = None  # --slippage (backtest's)

    @property
    def name(self) -> str:
        return self.strategy.stem

    def one_source(self) -> None:
        source.one_source(self.data_file, self.market)

    def fixed(self) -> dict[str, Any]:
        """The ``--param`` values."""
        return source.parse_params(self.params)

    def slippage(self) -> float:
        """``--slippage-bps`` or ``--slippage`` as a fraction of the price (0 when neither is given)."""
        if self.slippage_bps is not None and self.fraction is not None:
            raise click.UsageError("give --slippage-bps or --slippage (a fraction), not both")
        return self.slippage_bps / 10_000 if self.slippage_bps is not None else self.fraction or 0.0

    def times(self) -> tuple[int | None, int | None]:
        """``--from`` and ``--to`` in epoch ms."""
        return source.parse_times(self.start, self.end)

    def candles(self, settings: Settings | None) -> dict[str, Any]:
        """The candles of ``--data`` or ``--market`` (``settings`` for a market)."""
        return source.candles(settings, self.data_file, self.market, self.timeframe, *self.times())

    def costs(self) -> dict[str, Any]:
        """What every run is given besides its code, candles, parameters and name (the keywords of
        ``engine.run``, ``quotes.run``, ``sweep.run`` and ``StudyConfig`` for them)."""
        return dict(
            cash=self.cash,
            fee=self.fee,
            maker_fee=self.maker_fee,
            slippage=self.slippage(),
            lookback=self.lookback,
        )

    def study_config(
        self, objectives: tuple[str, ...], sampler: str, prune: bool, seed: int | None
    ) -> StudyConfig:
        """A study's config with these costs and ``--param`` values fixed; raises ``OptimizeError``."""
        from tradewind.backtest.optimize import StudyConfig

        return StudyConfig(
            objectives=objectives, sampler=sampler, prune=prune, seed=seed, fixed=self.fixed(), **self.costs()
        )

    def job_data(self, settings: Settings) -> BacktestData:
        """The candles as the backtest workers' jobs name them: the file (or, for workers on a bus, which
        cannot read it, the candles themselves when they fit a message), or the market and range."""
        from tradewind.bus.messages import BacktestData

        if self.data_file is not None:
            data = BacktestData(path=str(self.data_file.resolve()), tf=self.timeframe)
            return (source.inline(self.data_file, self.timeframe) or data) if settings.nats_url else data
        assert self.market is not None
        t0, t1 = self.times()
        return BacktestData(
            market_id=source.market_id(settings, self.market), tf=self.timeframe, start=t0, end=t1
        )


def run_options(
    *, param_help: str = PARAM_HELP, fraction: bool = False
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The arguments and options of ``Run`` (first in ``--help``), given to the command as its first
    argument, ``run``; the command's own options come as keywords. ``fraction``: ``--slippage`` too."""
    options = [
        click.argument("strategy", type=FILE),
        click.option(
            "--data",
            "data_file",
            type=FILE,
            help="A candle file (CSV, Parquet, freqtrade JSON/feather, Gekko CSV).",
        ),
        click.option(
            "--market",
            help="A stored market: its id (see `tradewind data list`) or EXCHANGE:SYMBOL; read from the history "
            "store (Parquet) when it holds the market, else from the database.",
        ),
        click.option("--timeframe", type=click.Choice(list(TIMEFRAMES)), default="1m", show_default=True),
        click.option("--from", "start", help="Start time (ISO 8601 or epoch ms), with --market."),
        click.option("--to", "end", help="End time (exclusive), with --market."),
        click.option("--param", "params", multiple=True, help=param_help),
        click.option(
            "--fee",
            type=click.FloatRange(0, 0.1),
            default=0.001,
            show_default=True,
            help="The taker fee, a fraction: market entries, signal exits, stops.",
        ),
        click.option(
            "--maker-fee",
            type=click.FloatRange(0, 0.1),
            default=None,
            help="The maker fee, a fraction: limit entries, take-profits.  [default: --fee]",
        ),
        click.option(
            "--cash", type=click.FloatRange(min=0, min_open=True), default=10_000.0, show_default=True
        ),
        click.option(
            "--slippage-bps",
            type=click.FloatRange(0, 1000),
            default=None,
            help="Slippage on market and stop fills, in basis points.  [default: 0]",
        ),
        *(
            [
                click.option(
                    "--slippage",
                    "fraction",
                    type=click.FloatRange(0, 0.1),
                    default=None,
                    help="The same as a fraction of the price (0.0005 = 5 bps); not with --slippage-bps.",
                )
            ]
            if fraction
            else []
        ),
        click.option("--lookback", type=click.IntRange(1, 100_000), default=500, show_default=True),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    ]
    shared = [f.name for f in dataclasses.fields(Run)]

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def command(**kw: Any) -> None:
            fn(Run(**{k: kw.pop(k) for k in shared if k in kw}), **kw)

        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def local_workers(settings: Settings, workers: int | None) -> tuple[int, str]:
    """How many local workers run the jobs without a bus (``--workers``, else the CPU count), and where the
    jobs run, as a progress bar says it. Closing our own bus clients is no news: their logs are quieted."""
    import logging
    import os

    n = workers or os.cpu_count() or 2
    logging.getLogger("tradewind.bus.connection").setLevel(logging.ERROR)
    return n, settings.nats_url or f"{n} local worker(s)"
