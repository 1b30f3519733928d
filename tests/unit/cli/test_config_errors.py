"""A configuration error ends every command the same way: one line on stderr, ``tradewind: <what is
wrong>``, exit status 2, before the command does anything; never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from tradewind.cli import main

STRATEGY = 'function decide(c) if c.close[#c.close] > 100 then return "long" end return "short" end\n'
CANDLES = "time,open,high,low,close,volume\n" + "".join(
    f"{1_700_000_000_000 + i * 60_000},{100 + i % 7},{102 + i % 7},{99 + i % 7},{101 + i % 7},5\n"
    for i in range(60)
)

#: A run of each command that passes its own checks of its arguments, so that only the setting can stop it
#: (the cheap ones run to the end with good settings, below). ``{s}`` is a strategy file, ``{c}`` candles.
ARGS = {
    "up": [],
    "run": ["core"],
    "db upgrade": [],
    "backtest": ["{s}", "--data", "{c}"],
    "optimize": ["{s}", "--data", "{c}", "--trials", "1"],
    "walkforward": ["{s}", "--data", "{c}", "--split", "0.5", "--trials", "1"],
    "check": ["{s}", "--data", "{c}", "--only", "recursive"],
    "data import": ["{c}", "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m"],
    "data list": [],
    "data download": ["--exchange", "sim", "--symbol", "BTC/USD", "--since", "2024-01-01"],
    "user create": ["ops@example.com", "--password", "an operator's long passphrase"],
    "secrets rotate": [],
    "bench latency": ["--assignments", "1", "--candles", "2"],
}

#: A bad setting, and what the one line must name.
BAD = {
    "an invalid number": ({"TRADEWIND_PORT": "eighty"}, "TRADEWIND_PORT"),
    "a database URL of no supported database": (
        {"TRADEWIND_DATABASE_URL": "nonsense://"},
        "TRADEWIND_DATABASE_URL",
    ),
    "an unknown setting": ({"TRADEWIND_SIM_SPEEED": "60"}, "TRADEWIND_SIM_SPEEED"),
    "a settings file that is not TOML": ({"TRADEWIND_CONFIG": "{tmp}/bad.toml"}, "TRADEWIND_CONFIG"),
}


def commands(group: click.Group, prefix: str = "") -> Iterator[str]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


def invoke(tmp_path: Path, args: list[str], **settings: str) -> Result:
    """``tradewind ARGS`` in this process with exactly ``settings`` (and a data folder of the test's own)."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TRADEWIND_")}
    env.update({"TRADEWIND_DATA_DIR": str(tmp_path / "home"), **settings})
    return CliRunner().invoke(main, args, env=env)


def assert_one_line(result: Result, status: int, *wanted: str) -> str:
    assert result.exit_code == status, (result.exit_code, result.output, result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in wanted:
        assert text in lines[0], lines[0]
    return lines[0]


def test_every_command_has_a_run_here() -> None:
    assert sorted(commands(main)) == sorted(ARGS)


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("command", list(ARGS))
def test_a_bad_setting_is_one_line_and_status_2_for_every_command(
    tmp_path: Path, command: str, bad: str
) -> None:
    (tmp_path / "s.lua").write_text(STRATEGY)
    (tmp_path / "c.csv").write_text(CANDLES)
    (tmp_path / "bad.toml").write_text("port = \n")
    args = [a.format(s=tmp_path / "s.lua", c=tmp_path / "c.csv") for a in ARGS[command]]
    settings, key = BAD[bad]
    settings = {k: v.format(tmp=tmp_path) for k, v in settings.items()}
    line = assert_one_line(invoke(tmp_path, [*command.split(), *args], **settings), 2, key)
    assert line.startswith("tradewind: ")
    assert not (tmp_path / "home").exists()  # nothing was started, stored or made


def test_the_same_run_with_good_settings_does_its_work(tmp_path: Path) -> None:
    """The runs above fail only for the setting: here the cheap ones succeed."""
    (tmp_path / "s.lua").write_text(STRATEGY)
    (tmp_path / "c.csv").write_text(CANDLES)
    for command in ("backtest", "check", "data import", "data list", "db upgrade", "user create"):
        args = [a.format(s=tmp_path / "s.lua", c=tmp_path / "c.csv") for a in ARGS[command]]
        result = invoke(tmp_path, [*command.split(), *args])
        assert result.exit_code == 0, (command, result.output)


@pytest.mark.parametrize(
    ("settings", "wanted"),
    [
        ({"TRADEWIND_CONFIG": "{tmp}/missing.toml"}, "TRADEWIND_CONFIG: no file"),
        ({"TRADEWIND_CONFIG": "{tmp}/bad.toml"}, "is not TOML"),
        ({"TRADEWIND_CONFIG": "{tmp}/unknown.toml"}, "sim_speeed"),
        ({"TRADEWIND_DATABASE_URL": "postgresql+asyncpg://u:pw@db:port/x"}, "SQLAlchemy cannot use it"),
        ({"TRADEWIND_DATA_DIR": "/proc/no/such/folder"}, "data_dir (TRADEWIND_DATA_DIR): cannot create"),
    ],
    ids=["missing TOML file", "bad TOML", "unknown key in TOML", "URL SQLAlchemy refuses", "data folder"],
)
def test_configuration_errors_of_every_kind_are_one_line_and_status_2(
    tmp_path: Path, settings: dict[str, str], wanted: str
) -> None:
    (tmp_path / "bad.toml").write_text("port = \n")
    (tmp_path / "unknown.toml").write_text("sim_speeed = 60\n")
    settings = {k: v.format(tmp=tmp_path) for k, v in settings.items()}
    line = assert_one_line(invoke(tmp_path, ["data", "list"], **settings), 2, wanted)
    assert "pw" not in line  # never the password of a database URL


def test_a_secret_key_that_is_not_one_or_is_missing_is_a_configuration_error(tmp_path: Path) -> None:
    assert_one_line(
        invoke(tmp_path, ["secrets", "rotate"], TRADEWIND_SECRET_KEY="not-a-key"),
        2,
        "tradewind: secret_key (TRADEWIND_SECRET_KEY): not a Fernet key",
    )
    assert_one_line(
        invoke(tmp_path, ["run", "web"], TRADEWIND_MODE="distributed"),
        2,
        "TRADEWIND_SECRET_KEY) is required in distributed mode",
    )


def test_a_database_that_cannot_be_reached_is_one_line_without_its_password(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://tw:s3cret@127.0.0.1:1/tradewind"  # nothing listens on port 1
    line = assert_one_line(
        invoke(tmp_path, ["db", "upgrade"], TRADEWIND_DATABASE_URL=url),
        1,
        "Error: cannot open the database postgresql+asyncpg://tw:***@127.0.0.1:1/tradewind",
    )
    assert "s3cret" not in line


def test_the_installed_command_says_it_in_one_line_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update(TRADEWIND_DATA_DIR=str(tmp_path), TRADEWIND_PORT="eighty")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "tradewind"), "data", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "tradewind: invalid configuration: port (TRADEWIND_PORT): Input should be a valid integer, unable to "
        "parse string as an integer"
    ]


def test_up_on_a_port_in_use_says_so_in_one_line_before_starting_anything(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
        env["TRADEWIND_DATA_DIR"] = str(tmp_path / "data")
        done = subprocess.run(
            [sys.executable, "-m", "tradewind.cli", "up", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert lines[-1] == (
        f"tradewind: cannot serve on 127.0.0.1:{port}: Address already in use (is tradewind running "
        "already? choose another with --port or TRADEWIND_PORT)"
    ), done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "tradewind.db").exists()  # nothing started, nothing migrated
