"""Optimisation with Optuna on the backtest workers: a study finds the optimum built into generated candles,
a trial whose worker is killed is run again elsewhere, and a study interrupted mid-trial resumes to its
total after its storage is closed and opened again, from the library and from the command line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest

from tradewind.backtest import engine, sweep
from tradewind.backtest import optimize as opt
from tradewind.backtest.importers import load
from tradewind.backtest.worker import BacktestWorker
from tradewind.bus.connection import connect
from tradewind.bus.embedded import EmbeddedNats
from tradewind.bus.messages import BacktestData
from tradewind.config import Settings
from tradewind.sandbox.runtime import StrategyRuntime

T0 = 1_700_000_400_000  # a multiple of ten minutes: minute % 10 == 0
MIN = 60_000
# Long while (minute - phase) % 10 < hold. The candles rise 1 % on minutes 3..6 of every ten and fall 1 % on
# the others; a decision at a candle's close acts at the next open (the previous close), so holding exactly
# the rising candles means deciding long on minutes 2..5: phase 2, hold 4 is the one best pair, by construction.
CYCLE = textwrap.dedent("""\
    params = {
      phase = {type = "int", min = 0, max = 9, default = 0, description = "first minute of ten held"},
      hold = {type = "int", min = 1, max = 9, default = 5},
      spin = {type = "int", default = 0},
    }
    function decide(c, params)
      for i = 1, params.spin do end
      local minute = c.time[#c.time] // 60000
      if (minute - params.phase) % 10 < params.hold then return "long" end
      return "short"
    end
    """)
BEST = {"phase": 2, "hold": 4}


def cycle_rows(n: int = 300) -> list[tuple[int, float, float, float, float, float]]:
    rows, prev = [], 100.0
    for i in range(n):
        close = prev * (1.01 if 3 <= i % 10 < 7 else 0.99)
        rows.append((T0 + i * MIN, prev, max(prev, close), min(prev, close), close, 1.0))
        prev = close
    return rows


def write_cycle(path: Path, n: int = 300) -> Path:
    lines = ["time,open,high,low,close,volume"] + [",".join(map(str, r)) for r in cycle_rows(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def space() -> dict[str, Any]:
    rt = StrategyRuntime(CYCLE, name="cycle", run_init=False)
    try:
        return rt.declared
    finally:
        rt.close()


async def study_on(
    url: str,
    db_url: str,
    csv: Path,
    name: str,
    total: int,
    *,
    lanes: int = 2,
    resume: bool = False,
    seed: int | None = 4,
    worker_timeout_s: float = 30.0,
    fixed: dict[str, Any] | None = None,
    on_event: Any = None,
) -> optuna.Study:
    config = opt.StudyConfig(objectives=("return",), seed=seed, fee=0.0, lookback=5, fixed=fixed or {})
    study = opt.open_study(opt.open_storage(db_url), name, config, resume=resume)
    job = opt.Job(code=CYCLE, data=BacktestData(path=str(csv), tf="1m"), name="cycle", config=config)
    nc = await connect(url, "driver")
    try:
        runner = opt.BusRunner(nc, job, worker_timeout_s=worker_timeout_s)
        n = len(load(csv).arrays()["time"])
        await opt.Optimizer(study, space(), config, runner, n, on_event=on_event).run(total, lanes)
    finally:
        await nc.close()
    return study


@pytest.mark.timeout(60)
async def test_the_study_finds_the_optimum_built_into_the_candles(tmp_path: Path) -> None:
    csv = write_cycle(tmp_path / "cycle.csv")
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
    async with sweep.LocalWorkers(None, 2, None) as url:  # the embedded path: the CLI's without a bus
        # one lane: TPE sees the same results in the same order every run (with two, a run once found (3, 3))
        study = await study_on(url, db_url, csv, "known", 50, lanes=1)
    best = study.best_trial
    assert {k: best.params[k] for k in BEST} == BEST
    # the engine over every pair agrees: that pair, and only it, gives the best return
    arrays = load(csv).arrays()
    grid = {
        (p, h): engine.run(
            CYCLE, arrays, params={"phase": p, "hold": h, "spin": 0}, fee=0.0, lookback=5
        ).summary()["return_pct"]
        for p in range(10)
        for h in range(1, 10)
    }
    top = max(grid.values())
    assert [k for k, v in grid.items() if v == top] == [(2, 4)]
    assert best.value == pytest.approx(top, rel=1e-12)
    states = {t.state for t in study.trials}
    assert (
        optuna.trial.TrialState.PRUNED in states
    )  # the median pruner stopped trials on their partial results
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert all(t.intermediate_values and max(t.intermediate_values) < 300 for t in pruned)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(sorted(t.intermediate_values) == [75, 150] for t in complete)
    assert {w for t in study.trials for w in t.user_attrs["workers"]} == {"local-1", "local-2"}
    assert best.user_attrs["params"] == {**BEST, "spin": 0}  # the fixed default went with every trial


WORKER = textwrap.dedent("""\
    import asyncio, sys
    from tradewind.backtest.worker import BacktestWorker
    from tradewind.bus.connection import connect
    from tradewind.config import Settings

    async def main():
        nc = await connect(sys.argv[1], "doomed")
        worker = BacktestWorker(Settings(data_dir=sys.argv[2]), nc, None, name="doomed")
        await worker.start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """)


@pytest.mark.timeout(60)
async def test_a_killed_workers_trial_is_run_again_on_another(tmp_path: Path) -> None:
    csv = write_cycle(tmp_path / "cycle.csv")
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
    server = EmbeddedNats(tmp_path / "nats")
    url = await server.start()
    doomed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, url, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    survivor: list[Any] = []
    killed = asyncio.Event()

    def on_event(kind: str, number: int, worker: str) -> None:
        if kind == "running" and worker == "doomed" and not killed.is_set():
            killed.set()
            os.kill(doomed.pid, signal.SIGKILL)  # mid-trial: it took the job and beat once

    try:
        assert doomed.stdout is not None and (await doomed.stdout.readline()).strip() == b"ready"

        async def start_survivor() -> None:
            await killed.wait()
            nc = await connect(url, "survivor")
            worker = BacktestWorker(Settings(data_dir=tmp_path), nc, None, name="survivor")
            await worker.start()
            survivor.extend([nc, worker])

        helper = asyncio.ensure_future(start_survivor())
        # a slow trial (a spin in each decision): the doomed worker is still on it when it is killed
        study = await study_on(
            url,
            db_url,
            csv,
            "killed",
            3,
            lanes=1,
            worker_timeout_s=1.5,
            fixed={"spin": 20_000},
            on_event=on_event,
        )
        await helper
        assert await asyncio.wait_for(doomed.wait(), 5) == -signal.SIGKILL
        first = study.trials[0]
        # held by the doomed worker, then run by the survivor
        assert first.user_attrs["workers"][:2] == ["doomed", "survivor"]
        assert first.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        assert len([t for t in study.trials if opt.counted(t)]) == 3
        assert all(t.state != optuna.trial.TrialState.FAIL for t in study.trials)
    finally:
        if doomed.returncode is None:
            doomed.kill()
            await doomed.wait()
        if survivor:
            await survivor[1].stop()
            await survivor[0].close()
        await server.stop()


@pytest.mark.timeout(60)
async def test_a_study_interrupted_mid_trial_resumes_to_its_total(tmp_path: Path) -> None:
    csv = write_cycle(tmp_path / "cycle.csv")
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}"
    async with sweep.LocalWorkers(None, 2, None) as url:
        study = await study_on(url, db_url, csv, "resumed", 5)
        # the driver dies mid-trial: a trial asked, its parameters drawn, never told
        trial = study.ask()
        lost = {name: opt.suggest(trial, spec) for name, spec in opt.searched(space(), {}).items()}
        rdb = study._storage._backend  # type: ignore[attr-defined]  # Optuna's RDBStorage under its cache
        rdb.remove_session()
        rdb.engine.dispose()
        del study
        # a restart: the storage opened anew, the study loaded by name, run on to 9 trials in all
        again = await study_on(url, db_url, csv, "resumed", 9, resume=True)
    trials = again.trials
    assert len([t for t in trials if opt.counted(t)]) == 9
    interrupted = trials[5]
    assert interrupted.state == optuna.trial.TrialState.FAIL and interrupted.user_attrs["requeued"]
    rerun = [t for t in trials[6:] if t.params == lost]
    assert rerun and rerun[0].state.is_finished() and rerun[0].state != optuna.trial.TrialState.FAIL
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradewind.cli", "optimize", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.timeout(90)
def test_the_cli_optimises_and_resumes_a_named_study(tmp_path: Path) -> None:
    csv = write_cycle(tmp_path / "cycle.csv")
    strategy = tmp_path / "cycle.lua"
    strategy.write_text(CYCLE)
    env = {**os.environ, "TRADEWIND_DATA_DIR": str(tmp_path / "data")}
    env.pop("TRADEWIND_NATS_URL", None)
    env.pop("TRADEWIND_DATABASE_URL", None)
    common = [
        str(strategy),
        "--data",
        str(csv),
        "--objective",
        "return,max_drawdown",
        "--lookback",
        "5",
        "--fee",
        "0",
        "--workers",
        "2",
        "--study",
        "cli",
        "--json",
    ]
    first = _cli(*common, "--trials", "6", env=env)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["sampler"] == "nsga2" and doc["directions"] == ["maximize", "minimize"]
    assert sum(doc["trials"].values()) == 6
    assert doc["best"] and all(len(b["values"]) == 2 for b in doc["best"])  # the Pareto front
    again = _cli(*common, "--trials", "6", env=env)
    assert again.returncode == 1 and "exists; give --resume" in again.stderr
    resumed = _cli(*common, "--trials", "9", "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert sum(json.loads(resumed.stdout)["trials"].values()) == 9
    assert (tmp_path / "data" / "tradewind.db.optuna").exists()  # beside the platform's database, not in it
