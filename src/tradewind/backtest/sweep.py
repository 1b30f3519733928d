"""Parameter sweeps: expand a grid, fan its points out over the backtest workers through NATS, rank them.

With ``TRADEWIND_NATS_URL`` set, the points go to the workers of that bus (every eval process runs
one). Without it, the sweep starts an embedded nats-server and ``workers`` local BacktestWorkers (one
child process each) for its own duration: the same path, on this machine's cores.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradewind.bus import messages as m
from tradewind.bus import subjects

RANKS = {  # metric -> True when higher is better
    "final_equity": True,
    "return_pct": True,
    "sharpe": True,
    "win_rate": True,
    "max_drawdown_pct": False,
}
MAX_POINTS = 100_000
INLINE_MAX = 600_000  # bytes of candles sent with each job (NATS' default message limit is 1 MB)


class SweepError(ValueError):
    """A sweep specification that cannot be expanded; the message says which and why."""


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            x = float(text)
        except ValueError:
            raise SweepError(f"{text!r} is not a number") from None
        if x != x or x in (float("inf"), float("-inf")):
            raise SweepError(f"{text!r} is not a finite number") from None
        return x


def parse_sweep(item: str) -> tuple[str, list[Any]]:
    """``fast=5..20`` (5 to 20 inclusive, step 1), ``slow=20..60:5``, ``k=0.5..1.5:0.25`` or a list
    ``mode=1,2,5``: the parameter name and its values."""
    name, sep, spec = item.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name.isidentifier() or not spec:
        raise SweepError(f"{item!r}: write name=FROM..TO[:STEP] or name=A,B,C")
    if ".." in spec:
        rng, _, step_text = spec.partition(":")
        lo_text, _, hi_text = rng.partition("..")
        lo, hi = _number(lo_text), _number(hi_text)
        step = _number(step_text) if step_text else 1
        if step <= 0:
            raise SweepError(f"{item!r}: the step must be positive")
        if hi < lo:
            raise SweepError(f"{item!r}: {hi} is below {lo}")
        count = int((hi - lo) / step + 1e-9) + 1
        if count > MAX_POINTS:
            raise SweepError(f"{item!r}: {count:,} values; at most {MAX_POINTS:,}")
        ints = all(isinstance(x, int) for x in (lo, hi, step))
        values: list[Any] = [lo + i * step if ints else round(lo + i * step, 12) for i in range(count)]
    else:
        values = [_number(v.strip()) for v in spec.split(",") if v.strip()]
    if not values:
        raise SweepError(f"{item!r}: no values")
    return name, values


def grid(fixed: dict[str, Any], sweeps: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Every combination of the swept values, each merged over the fixed parameters."""
    names = [n for n, _ in sweeps]
    if len(set(names)) != len(names):
        raise SweepError("a parameter is swept twice")
    total = 1
    for _, values in sweeps:
        total *= len(values)
    if total > MAX_POINTS:
        raise SweepError(f"the grid has {total:,} points; at most {MAX_POINTS:,}")
    return [
        {**fixed, **dict(zip(names, combo, strict=True))}
        for combo in itertools.product(*(v for _, v in sweeps))
    ]


@dataclass
class Point:
    params: dict[str, Any]
    worker: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def row(self) -> dict[str, Any]:
        keys = (
            "final_equity",
            "return_pct",
            "max_drawdown_pct",
            "sharpe",
            "win_rate",
            "trade_count",
            "candles",
        )
        return {
            "params": self.params,
            **{k: self.summary.get(k) for k in keys},
            "error": self.error,
            "worker": self.worker,
        }


def rank(points: list[Point], metric: str = "final_equity") -> list[Point]:
    """Best first by ``metric``; points that failed last."""
    if metric not in RANKS:
        raise SweepError(f"rank by one of {', '.join(RANKS)}")
    sign = -1.0 if RANKS[metric] else 1.0
    return sorted(points, key=lambda p: (p.error is not None, sign * float(p.summary.get(metric) or 0.0)))


async def run(
    code: str,
    data: m.BacktestData,
    points: list[dict[str, Any]],
    *,
    name: str = "strategy",
    cash: float = 10_000.0,
    fee: float = 0.001,
    slippage: float = 0.0,
    lookback: int = 500,
    nats_url: str | None = None,
    workers: int = 2,
    db_url: str | None = None,
    in_flight: int | None = None,
    timeout_s: float = 3600.0,
    progress: Callable[[int, int], None] | None = None,
    maker_fee: float | None = None,
) -> list[Point]:
    """Run every point on the backtest workers (of ``nats_url``, or ``workers`` local ones on an embedded
    NATS) and return them in grid order with their summaries, errors and the worker that ran each.
    ``fee`` is the taker fee, ``maker_fee`` the maker fee (None: the taker fee), ``slippage`` a fraction."""
    from tradewind.bus.connection import connect

    async with LocalWorkers(nats_url, workers, db_url) as url:
        nc = await connect(url, f"sweep-{uuid.uuid4().hex[:8]}")
        try:
            gate = asyncio.Semaphore(in_flight or (2 * workers if nats_url is None else 64))
            results = [Point(p) for p in points]
            done = 0

            async def one(i: int) -> None:
                nonlocal done
                job = m.RunBacktest(
                    job_id=str(i),
                    code=code,
                    data=data,
                    name=name,
                    params=points[i],
                    cash=cash,
                    fee=fee,
                    slippage=slippage,
                    lookback=lookback,
                    maker_fee=maker_fee,
                )
                async with gate:
                    msg = await _request(nc, job, timeout_s)
                reply = m.decode(msg.data, m.BacktestResult)
                results[i].worker, results[i].summary, results[i].error = (
                    reply.worker,
                    reply.summary,
                    reply.error,
                )
                done += 1
                if progress is not None:
                    progress(done, len(points))

            await asyncio.gather(*(one(i) for i in range(len(points))))
            return results
        finally:
            await nc.close()


async def _request(nc: Any, job: m.RunBacktest, timeout_s: float) -> Any:
    from nats.errors import NoRespondersError

    for attempt in range(50):  # workers may still be subscribing (local) or restarting
        try:
            return await nc.request(subjects.BACKTEST_RUN, m.encode(job), timeout=timeout_s)
        except NoRespondersError:
            if attempt == 49:
                raise SweepError(
                    "no backtest worker answers on the bus; start an eval process (tradewind run eval)"
                ) from None
            await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


class LocalWorkers:
    """The bus at ``url``, or an embedded NATS with ``n`` local BacktestWorkers for the sweep's duration."""

    def __init__(self, url: str | None, n: int, db_url: str | None) -> None:
        self.url, self.n, self.db_url = url, n, db_url
        self._stack: list[Any] = []

    async def __aenter__(self) -> str:
        if self.url:
            return self.url
        from tradewind.backtest.worker import BacktestWorker
        from tradewind.bus.connection import connect
        from tradewind.bus.embedded import EmbeddedNats
        from tradewind.config import Settings

        tmp = tempfile.TemporaryDirectory(prefix="tradewind-sweep-")
        self._stack.append(tmp.cleanup)
        server = EmbeddedNats(Path(tmp.name))
        url = await server.start()
        self._stack.append(server.stop)
        sf = None
        if self.db_url:
            from tradewind.storage.db import make_engine, make_session_factory

            engine = make_engine(self.db_url)
            self._stack.append(engine.dispose)
            sf = make_session_factory(engine)
        settings = Settings(database_url=self.db_url) if self.db_url else Settings()
        started = []
        for i in range(self.n):
            nc = await connect(url, f"sweep-worker-{i}")
            self._stack.append(nc.close)
            worker = BacktestWorker(settings, nc, sf, name=f"local-{i + 1}")
            started.append(worker.start())
            self._stack.append(worker.stop)
        await asyncio.gather(*started)  # the children start in parallel
        return url

    async def __aexit__(self, *exc: Any) -> None:
        while self._stack:
            step = self._stack.pop()
            result = step()
            if asyncio.iscoroutine(result):
                await result


def inline_data(path: Path, tf: str) -> m.BacktestData | None:
    """A candle file's candles to send with each job, for workers that cannot read the file (on another
    machine); None when they are too large for a message. Raises the importers' ImportError_."""
    import hashlib

    from tradewind.backtest.importers import load
    from tradewind.backtest.worker import pack_candles

    parts = pack_candles(load(path).arrays())
    if sum(len(b) for b in parts) > INLINE_MAX:
        return None
    return m.BacktestData(tf=tf, inline=parts, key=hashlib.sha256(b"".join(parts)).hexdigest())


def workers_used(points: list[Point]) -> dict[str, int]:
    return dict(Counter(p.worker for p in points if p.worker))


def elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 3)
