"""One typed, frozen settings object: TRADEWIND_* environment variables, or a TOML file.

Unknown keys are refused with a message that names them. Nothing here is created at import time:
every composition root calls ``load_settings()`` once and passes the result down.
"""

from __future__ import annotations

import os
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CommaList = Annotated[list[str], NoDecode]
#: The databases the storage layer is written and tested for, each through its asyncio driver.
DATABASE_URL = re.compile(r"^(sqlite\+aiosqlite|postgresql\+asyncpg)://")


class ConfigError(Exception):
    """The configuration is wrong; the message names the key."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRADEWIND_", extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".tradewind")
    database_url: str | None = None  # default: SQLite in data_dir
    nats_url: str | None = None  # default for `up`: an embedded nats-server
    mode: Literal["embedded", "distributed"] = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "INFO"
    metrics_port: int = Field(default=9000, ge=0, le=65535)  # /healthz, /readyz, /metrics of `run` components

    exchanges: CommaList = ["sim"]
    sim_symbols: CommaList = ["BTC/USD", "ETH/USD", "SOL/USD"]
    sim_speed: float = Field(default=1.0, gt=0, le=10_000)
    history_days: int = Field(default=30, ge=0, le=365)  # candles each exchange backfills on start
    sim_seed: int = 7
    sim_fee: str = "0.001"  # the taker fee: market orders and stops
    sim_maker_fee: str = "0.001"  # limit orders and take-profits
    sim_slippage_bps: str = "0"  # against the trade, on market and stop fills (basis points)
    sim_paper_cash: str = "10000"
    # The simulated book: bid and ask this many basis points either side of the last trade, a trade (and a
    # tick) every ``sim_tick_ms`` of sim time along the walk; the candles are made of those trades.
    sim_spread_bps: float = Field(default=2.0, ge=0, le=1000)
    sim_tick_ms: int = Field(default=1000, ge=100, le=60_000)

    # Quoting strategies (trigger "tick"): each account's budget of quote calls (a placement or a cancel),
    # refilled at ``quote_rate_per_s`` up to ``quote_burst``; a change that finds the budget empty waits and is
    # coalesced with the next one. Ticks are stored sampled, the last of each ``tick_sample_ms``.
    quote_rate_per_s: float = Field(default=10.0, gt=0, le=10_000)
    quote_burst: int = Field(default=20, ge=1, le=100_000)
    tick_sample_ms: int = Field(default=1000, ge=100, le=3_600_000)

    # Retention (storage.retention): evaluations that led to no order are kept in full this many days, sampled
    # ticks this many; 0 keeps them for ever. Orders, fills and candles are always kept. The leading core
    # prunes every ``prune_every_s`` seconds, in small batches off the hot path.
    keep_evaluations_days: float = Field(default=14.0, ge=0, le=36_500)
    keep_ticks_days: float = Field(default=30.0, ge=0, le=36_500)
    prune_every_s: float = Field(default=300.0, ge=1, le=86_400)

    eval_workers: int = Field(default=1, ge=0, le=64)
    eval_batch_size: int = Field(
        default=1000, ge=1, le=10_000
    )  # the largest evaluation request (see core.decide)
    eval_timeout_s: float = Field(default=10.0, gt=0)
    eval_instruction_limit: int = Field(default=10_000_000, ge=1000)
    eval_memory_mb: int = Field(default=32, ge=1, le=4096)
    eval_time_limit_ms: int = Field(default=1000, ge=10)
    eval_pause_after_failures: int = Field(default=5, ge=1)
    core_ack_wait_s: float = Field(default=15.0, ge=1)  # a candle unacknowledged this long is redelivered

    secret_key: str | None = None  # Fernet key for exchange secrets; generated into data_dir when embedded

    bitfinex_ws_url: str = "wss://api-pub.bitfinex.com/ws/2"
    bitfinex_rest_url: str = "https://api-pub.bitfinex.com/v2"
    bitfinex_auth_url: str = "https://api.bitfinex.com/v2"
    bitfinex_symbols: CommaList = ["tBTCUSD", "tETHUSD"]
    # ccxt exchanges, as JSON: markets each one streams ({"binance": ["BTC/USDT"]}), and a base URL that
    # replaces the host of every API URL of an exchange ({"binance": "http://127.0.0.1:8080"}: tests, proxies).
    ccxt_symbols: dict[str, list[str]] = {}
    ccxt_urls: dict[str, str] = {}
    exchange_timeout_s: float = Field(
        default=10.0, gt=0
    )  # one REST call to a real exchange; past it the outcome is unknown

    # Alerts (tradewind.alerts, docs/alerts.md). A delivery is tried ``alerts_attempts`` times, waiting
    # ``alerts_retry_s`` and then twice as long each time (at most ``alerts_retry_max_s``); each channel
    # queues at most ``alerts_queue_size`` alerts. The daily summary goes at ``alerts_summary_hour`` UTC. An
    # exchange that publishes no candle for ``alerts_exchange_silence_s`` counts as disconnected.
    # ``alerts_private_targets``: deliver to loopback and private addresses (None: only when embedded).
    alerts_attempts: int = Field(default=5, ge=1, le=20)
    alerts_retry_s: float = Field(default=2.0, gt=0, le=3600)
    alerts_retry_max_s: float = Field(default=300.0, gt=0, le=86_400)
    alerts_timeout_s: float = Field(default=10.0, gt=0, le=300)
    alerts_queue_size: int = Field(default=100, ge=1, le=100_000)
    alerts_summary_hour: int = Field(default=0, ge=0, le=23)
    alerts_exchange_silence_s: float = Field(default=180.0, ge=1, le=86_400)
    alerts_private_targets: bool | None = None
    telegram_api_url: str = "https://api.telegram.org"  # the Bot API; tests point it at a local server
    # The platform's SMTP server for e-mail alerts (a channel may name its own instead)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "tradewind@localhost"
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"

    # `tradewind up`: the web server's processes, all serving the one port (runtime.WebProcesses). Two use a
    # second core for 200 browsing users where one event loop could not; more only help with more cores free.
    # One by default (each is another Python process, with its memory and start-up); the login throttle is
    # one for all of them, kept in up's own process (web.security.SharedThrottle).
    web_processes: int = Field(default=1, ge=1, le=32)

    @field_validator("exchanges", "sim_symbols", "bitfinex_symbols", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        if value is not None and not DATABASE_URL.match(value):
            # the scheme alone, never the URL: it may hold a password
            scheme = value.split("://", 1)[0] if "://" in value else ""
            what = f"a {scheme}:// URL" if re.fullmatch(r"[\w+.-]{1,40}", scheme) else "that"
            raise ValueError(
                f"give sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DATABASE, not {what}"
            )
        return value

    @field_validator("sim_maker_fee", "sim_slippage_bps")
    @classmethod
    def _non_negative_decimal(cls, value: str) -> str:
        try:
            ok = Decimal(value) >= 0
        except (ArithmeticError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"must be a non-negative number, not {value!r}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("TRADEWIND_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    def make_data_dir(self) -> Path:
        """Create the data folder if missing, readable by its owner only: it holds the database and the key
        that encrypts exchange secrets. An existing folder is left as it is."""
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"data_dir (TRADEWIND_DATA_DIR): cannot create {self.data_dir}: {exc.strerror or exc}"
            ) from None
        return self.data_dir

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'tradewind.db'}"


_NOT_SETTINGS = {"TRADEWIND_CONFIG"}


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning a validation failure into a ConfigError that names each bad key."""
    known = {f"TRADEWIND_{name.upper()}" for name in Settings.model_fields} | _NOT_SETTINGS
    unknown = sorted(k for k in os.environ if k.startswith("TRADEWIND_") and k not in known)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    toml_path = os.environ.get("TRADEWIND_CONFIG")
    if toml_path and not os.path.isfile(toml_path):  # pydantic-settings would read it as empty
        raise ConfigError(f"TRADEWIND_CONFIG: no file {toml_path}")
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"TRADEWIND_CONFIG: {toml_path} is not TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"TRADEWIND_CONFIG: cannot read {toml_path}: {exc.strerror or exc}") from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "?"
            env = f"TRADEWIND_{key.upper()}"
            problems.append(f"{key} ({env}): {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
