"""Stored walk-forward analyses (POST /api/walkforwards): the backtest worker that accepts one runs it.

The analysis is ``tradewind.backtest.walkforward``'s, as ``tradewind walkforward`` runs it, over the market's
stored candles, in one of the worker's child processes (as every Lua call): the strategy's declared
parameters optimised on each train window (Optuna in memory, the trials in threads of that child), the best
ones run on the test window after it. What is kept is its ``as_dict()`` document with, besides, the
out-of-sample trades of every window (each window's run starts with the same cash), the headline metrics of
the stitched out-of-sample curve and the data it ran over. While it runs the worker writes a heartbeat to
the row every few seconds; a row left running without one (its worker died) is shown ``interrupted``: a
walk-forward keeps no partial result, so it is started again rather than resumed.
"""

from __future__ import annotations

import asyncio
import logging
import math
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from tradewind.storage.models import WalkForwardRun
from tradewind.storage.types import utcnow

if TYPE_CHECKING:
    from tradewind.backtest.walkforward import WalkForward
    from tradewind.backtest.worker import BacktestWorker

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0
MAX_WINDOWS = 200
PARALLEL = 2  # trials at once, in threads of the child (Lua runs without the GIL)


def finite(value: Any) -> Any:
    """``value`` with every float that is not finite (a ratio over nothing) replaced by None: JSON has none."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def execute(
    code: str, name: str, arrays: dict[str, np.ndarray], spec: dict[str, Any]
) -> dict[str, Any]:  # pragma: no cover - in the child
    """Run the walk-forward ``spec`` (the row's config) of the strategy over ``arrays`` (in a pool child): the
    document kept as the row's result (see the module)."""
    from tradewind.backtest import engine
    from tradewind.backtest import optimize as opt
    from tradewind.backtest import walkforward as wf
    from tradewind.sandbox.runtime import StrategyError

    config = opt.StudyConfig.of(spec.get("study") or {})
    try:
        space = opt.declared_space(code, name)
    except StrategyError as exc:
        raise ValueError(str(exc)) from None
    trades: dict[int, list[dict[str, Any]]] = {}

    def backtest(code: str, arrays: dict[str, np.ndarray], **kw: Any) -> engine.Result:
        # analyse names each run {name}/w{index}/train or .../test: the test runs' trades are kept
        result = engine.run(code, arrays, **kw)
        head, _, tail = str(kw.get("name", "")).rpartition("/w")
        if head and tail.endswith("/test"):
            index = int(tail.removesuffix("/test"))
            trades[index] = [{"window": index, **t} for t in result.summary()["trades"]]
        return result

    analysis = wf.run(
        code,
        arrays,
        space,
        config,
        mode=spec.get("mode", "rolling"),
        train_ms=spec.get("train"),
        test_ms=spec.get("test"),
        split=spec.get("split"),
        max_windows=MAX_WINDOWS,
        trials=int(spec["trials"]),
        parallel=PARALLEL,
        name=name,
        backtest=backtest,
    )
    doc: dict[str, Any] = finite(
        document(analysis, [t for i in sorted(trades) for t in trades[i]], arrays["time"])
    )
    return doc


def document(analysis: WalkForward, trades: list[dict[str, Any]], times: np.ndarray) -> dict[str, Any]:
    """``analysis.as_dict()`` with the out-of-sample ``trades``, the stitched out-of-sample curve's headline
    metrics (the keys of a backtest's, and ``wfe``) and the ``range`` of candle ``times`` it ran over."""
    from tradewind.backtest import metrics as mt

    doc = analysis.as_dict()
    oos, _, _ = analysis.stitched("oos")
    pnls = [t["pnl"] for t in trades if t.get("pnl") is not None]
    bar_minutes = analysis.bar_ms / 60_000
    doc["metrics"] = {
        "final_equity": float(oos[-1]) if len(oos) else analysis.cash,
        "return_pct": doc["oos_return_pct"],
        "max_drawdown_pct": mt.max_drawdown_pct(oos),
        "sharpe": mt.sharpe(oos, bar_minutes),
        "sortino": mt.sortino(oos, bar_minutes),
        "profit_factor": mt.profit_factor(pnls),
        "win_rate": mt.win_rate(pnls),
        "trade_count": len(trades),
        "candles": sum(w.window.test.candles for w in analysis.windows),
        "wfe": doc["wfe"],
    }
    doc["trades"] = trades
    doc["range"] = (
        {"first": int(times[0]), "last": int(times[-1]), "candles": len(times)} if len(times) else None
    )
    return doc


async def drive(worker: BacktestWorker, walkforward_id: int) -> None:
    """Run the stored walk-forward ``walkforward_id``: running, then done (or error) with its result."""
    from tradewind.backtest.worker import claim, stored_data

    sf = worker.sf
    assert sf is not None
    async with sf() as s:
        claimed = await claim(s, WalkForwardRun, walkforward_id)
        if claimed is None:
            return
        row, found = claimed
        row.status, row.heartbeat_at, row.error = "running", utcnow(), None
        await s.commit()
        spec = dict(row.config or {})
        data = stored_data(row)
    status, result, error = "error", None, None
    beat: asyncio.Task[None] | None = None
    try:
        if found is None:
            raise ValueError("the strategy version no longer exists")
        code, name = found
        arrays = await worker.candles(data)
        beat = asyncio.ensure_future(_beat(worker, walkforward_id))
        result = await worker._execute(partial(execute, code, name, arrays, spec))
        status = "done"
    except (OSError, ValueError, RuntimeError) as exc:
        error = str(exc)
    finally:
        if beat is not None:
            beat.cancel()
    async with sf() as s:
        ended = await s.get(WalkForwardRun, walkforward_id)
        if ended is not None:
            ended.status, ended.result, ended.error, ended.finished_at = status, result, error, utcnow()
            await s.commit()


async def _beat(worker: BacktestWorker, walkforward_id: int) -> None:
    assert worker.sf is not None
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            async with worker.sf() as s:
                row = await s.get(WalkForwardRun, walkforward_id)
                if row is not None:
                    row.heartbeat_at = utcnow()
                    await s.commit()
        except Exception:  # the database is busy or away: the next beat tries again
            log.warning("walk-forward %s: heartbeat not written", walkforward_id, exc_info=True)
