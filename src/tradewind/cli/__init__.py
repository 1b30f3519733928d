"""The `tradewind` command: one module per command group, the settings, storage and error path they share
in ``context``; what the research commands share in ``options`` (their arguments), ``candles`` (reading
them) and ``report`` (showing the results).

up, run            the platform, whole or one component        (``cli.up``)
db                 the database schema                         (``cli.db``)
backtest           one run, a sweep, a quoting run             (``cli.backtest``)
optimize           an Optuna study of declared parameters      (``cli.optimize``)
walkforward, check walk-forward analysis, bias checks          (``cli.research``)
data               historical candles: import, list, download  (``cli.data``)
user, secrets      accounts and the keys at rest               (``cli.user``, ``cli.secrets``)
bench              load benchmarks                             (``cli.bench``)
"""

from __future__ import annotations

import click

from tradewind.cli.backtest import backtest
from tradewind.cli.bench import bench
from tradewind.cli.context import Group
from tradewind.cli.data import data
from tradewind.cli.db import db
from tradewind.cli.optimize import optimize
from tradewind.cli.research import check, walkforward
from tradewind.cli.secrets import secrets
from tradewind.cli.up import run, up
from tradewind.cli.user import user


@click.group(cls=Group)
@click.version_option(package_name="tradewind")
def main() -> None:
    """tradewind: write trading strategies in Lua, backtest them, and run them on live markets."""


for command in (up, run, db, backtest, optimize, walkforward, check, data, user, secrets, bench):
    main.add_command(command)
