"""The CLI's start-up is part of every command's time (a backtest's included, see benchmarks/RESULTS.md):
registering the commands must not import the database layer, the web app or the bus."""

import subprocess
import sys

HEAVY = (
    "sqlalchemy",
    "fastapi",
    "nats",
    "tradewind.storage.models",
    "tradewind.web.app",
    "ccxt",
    "pydantic",
    "rich",
)


def test_registering_the_commands_imports_nothing_heavy():
    code = f"import sys, tradewind.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"`import tradewind.cli` pulls in: {out}"


def test_backtest_help_runs_without_them():
    code = (
        "import sys\nfrom click.testing import CliRunner\nimport tradewind.cli as c\n"
        "r = CliRunner().invoke(c.main, ['backtest', '--help'])\nassert r.exit_code == 0, r.output\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
