"""Stored optimisation studies (POST /api/studies): the backtest worker that accepts one drives it.

It reads the strategy's declared parameters in one of its children (as every Lua call), loads the candles,
opens the Optuna study in the platform's database (``optimize.open_storage``) and runs trials on every
backtest worker of the bus (itself included) until the study has its trials, writing a heartbeat and the
best so far to the ``studies`` row every few seconds. A driver that dies leaves the row ``running`` with a
stale heartbeat: the API shows it ``interrupted`` and lets its owner resume it, and the resumed driver runs
the interrupted trials again before asking for new ones.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from tradewind.backtest import optimize as opt
from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.sandbox.params import ParamSpec
from tradewind.storage.models import Study, WalkForwardRun
from tradewind.storage.types import utcnow

if TYPE_CHECKING:
    from tradewind.backtest.worker import BacktestWorker

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0
STALE_S = 30.0  # a running study whose heartbeat is older than this has lost its driver
CAPACITY_WAIT_S = 0.3


def read_space(code: str, name: str) -> dict[str, ParamSpec]:  # pragma: no cover - in the child
    """The strategy's declared parameters (run in a pool child: it runs the strategy's top level)."""
    from tradewind.sandbox.runtime import StrategyError

    try:
        return opt.declared_space(code, name)
    except StrategyError as exc:
        raise ValueError(str(exc)) from None


def stale(study: Study | WalkForwardRun, now: dt.datetime | None = None) -> bool:
    """Whether a running study's driver (or walk-forward's worker) is gone (no heartbeat for STALE_S)."""
    if study.status != "running":
        return False
    beat = study.heartbeat_at or study.created_at
    return ((now or utcnow()) - beat).total_seconds() > STALE_S


async def capacity(nc: Any, wait_s: float = CAPACITY_WAIT_S) -> int:
    """Jobs the backtest workers of the bus run at once (each answers with its child processes); 0: none."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    total = 0
    try:
        await nc.publish(subjects.BACKTEST_CAPACITY, b"", reply=inbox)
        loop = asyncio.get_running_loop()
        until = loop.time() + wait_s
        while (left := until - loop.time()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except TimeoutError:
                break
            total += m.decode(msg.data, m.WorkerCapacity).processes
    finally:
        await sub.unsubscribe()
    return total


def summarize(study: Any, config: opt.StudyConfig) -> dict[str, Any]:
    """Counts by state and the best trial(s) so far, for the studies list (in Optuna's thread)."""
    rows = opt.trial_rows(study)
    counts: dict[str, int] = {}
    for r in rows:
        if not r["requeued"]:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
    best = opt.best_numbers(study)
    by_number = {r["number"]: r for r in rows}
    first = by_number[best[0]] if best else None
    if first is not None and len(config.objectives) > 1:
        sign = -1 if config.directions[0] == "maximize" else 1
        first = min((by_number[i] for i in best), key=lambda r: sign * r["values"][0])
    return {
        "counts": counts,
        "best_count": len(best),
        "best": None
        if first is None
        else {"number": first["number"], "params": first["params"], "values": first["values"]},
    }


async def drive(worker: BacktestWorker, study_id: int) -> None:
    """Run the stored study ``study_id`` to its number of trials (see the module)."""
    from tradewind.backtest.worker import claim, stored_data

    sf = worker.sf
    assert sf is not None
    async with sf() as s:
        claimed = await claim(s, Study, study_id)
        if claimed is None:
            return
        st, row = claimed
        st.status, st.heartbeat_at, st.error, st.result = "running", utcnow(), None, None
        await s.commit()
        cfg_raw, optuna_name, total = dict(st.config or {}), st.optuna_name, st.trials
        data = stored_data(st)
    status, error = "error", None
    beat: asyncio.Task[None] | None = None
    try:
        if row is None:
            raise ValueError("the strategy version no longer exists")
        code, name = row
        config = opt.StudyConfig.of(cfg_raw.get("study") or {})
        space = await worker._execute(partial(read_space, code, name))
        arrays = await worker.candles(data)
        storage = await asyncio.to_thread(opt.open_storage, worker.settings.db_url)
        study = await asyncio.to_thread(_open, storage, optuna_name, config)
        await _save(worker, study_id, space={k: v.as_dict() for k, v in space.items()})
        job = opt.Job(code=code, data=data, name=name, config=config)
        runner = opt.BusRunner(worker.nc, job, worker_timeout_s=worker.study_worker_timeout_s)
        driver = opt.Optimizer(study, space, config, runner, len(arrays["time"]))
        beat = asyncio.ensure_future(_beat(worker, study_id, study, config))
        parallel = await capacity(worker.nc) or 1
        await driver.run(total, parallel)
        status = "done"
        summary = await asyncio.to_thread(summarize, study, config)
        await _save(worker, study_id, summary=summary)
        if summary["best"] is not None:
            await _save(
                worker, study_id, result=await best_run(worker, code, name, config, arrays, summary["best"])
            )
    except (opt.OptimizeError, OSError, ValueError, RuntimeError) as exc:
        error = str(exc)
    finally:
        if beat is not None:
            beat.cancel()
    async with sf() as s:
        ended = await s.get(Study, study_id)
        if ended is not None:
            ended.status, ended.error, ended.finished_at = status, error, utcnow()
            await s.commit()


async def best_run(
    worker: BacktestWorker,
    code: str,
    name: str,
    config: opt.StudyConfig,
    arrays: dict[str, np.ndarray],
    best: dict[str, Any],
) -> dict[str, Any]:
    """The best trial (``summarize``'s) run again in full over ``arrays``, the candles the trials ran over (those
    loaded when the study started: an open-ended range has grown since), as a stored backtest is: its metrics,
    trades, equity curve and the data it ran over, kept as the study's ``result``; a run that fails keeps its
    error."""
    from tradewind.backtest.worker import execute

    out: dict[str, Any] = {"trial": best["number"], "params": best["params"], "values": best["values"]}
    try:
        done = await worker._execute(
            partial(
                execute,
                code,
                arrays,
                name,
                dict(best["params"]),
                config.cash,
                config.fee,
                config.slippage,
                config.lookback,
                True,
                config.maker_fee,
            )
        )
    except (OSError, ValueError, RuntimeError) as exc:
        return {**out, "error": str(exc)}
    metrics, equity = done["summary"], done["equity"]
    trades = metrics.pop("trades")
    metrics["trade_count"] = len(trades)
    span = (
        {"first": int(equity[0][0]), "last": int(equity[-1][0]), "candles": metrics.get("candles")}
        if equity
        else None
    )
    return {
        **out,
        "metrics": metrics,
        "trades": trades,
        "equity": equity,
        "range": span,
        "error": metrics.get("error"),
    }


def _open(storage: Any, name: str, config: opt.StudyConfig) -> Any:
    import optuna

    try:
        optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return opt.open_study(storage, name, config, resume=False)
    return opt.open_study(storage, name, config, resume=True)


async def _save(worker: BacktestWorker, study_id: int, **values: Any) -> None:
    assert worker.sf is not None
    async with worker.sf() as s:
        st = await s.get(Study, study_id)
        if st is not None:
            for k, v in values.items():
                setattr(st, k, v)
            st.heartbeat_at = utcnow()
            await s.commit()


async def _beat(worker: BacktestWorker, study_id: int, study: Any, config: opt.StudyConfig) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        try:
            await _save(worker, study_id, summary=await asyncio.to_thread(summarize, study, config))
        except Exception:  # the database is busy or away: the next beat tries again
            log.warning("study %s: heartbeat not written", study_id, exc_info=True)
