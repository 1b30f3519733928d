"""An optimisation trial whose parameters repeat a trial the driver ran takes that trial's results without
running (a backtest is deterministic): its values, metrics and pruning are the first trial's, its user attribute
``same_as`` names it; two lanes asking for the same point at once run it once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import optuna

from tradewind.backtest import optimize as opt
from tradewind.sandbox.params import ParamSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"x": ParamSpec("x", "int", min=1, max=5, default=1), "y": ParamSpec("y", "int", min=1, max=5)}


class Counting:
    """A runner that answers every stage it is asked (the objective: x + y), slowly enough for two lanes to
    overlap, and counts the runs of each point."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, int]] = []

    async def run(
        self,
        params: dict[str, Any],
        stages: list[int],
        cut: list[float | None],
        on_worker: Callable[[str], None] | None = None,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        self.runs.append((params["x"], params["y"]))
        await asyncio.sleep(0.05)
        value = float(params["x"] + params["y"])
        return [{"sharpe": value, "return_pct": value * 2, "candles": s} for s in stages], ["w1"]


def study_of(points: list[dict[str, int]]) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    for p in points:
        study.enqueue_trial(p, skip_if_exists=False)
    return study


def test_a_repeated_point_takes_the_first_trials_results() -> None:
    points = [{"x": 2, "y": 3}, {"x": 4, "y": 4}, {"x": 2, "y": 3}, {"x": 1, "y": 1}, {"x": 4, "y": 4}]
    study = study_of(points)
    runner = Counting()
    driver = opt.Optimizer(study, SPACE, opt.StudyConfig(seed=1, prune=False), runner, 1000)
    asyncio.run(driver.run(len(points), 1))
    assert runner.runs == [(2, 3), (4, 4), (1, 1)]
    rows = {r["number"]: r for r in opt.trial_rows(study)}
    assert [rows[i]["same_as"] for i in range(5)] == [None, None, 0, None, 1]
    assert rows[2]["values"] == rows[0]["values"] == [5.0] and rows[2]["metrics"] == rows[0]["metrics"]
    assert rows[4]["values"] == [8.0] and rows[4]["attempts"] == 0 and rows[4]["worker"] == "w1"
    assert driver.reused == 2


def test_a_repeat_of_a_pruned_point_is_pruned_without_running() -> None:
    # three points do well, then (1, 1) is pruned at the first stage; its repeat is too, from its stage result
    points = [{"x": 5, "y": 5}, {"x": 4, "y": 5}, {"x": 5, "y": 4}, {"x": 1, "y": 1}, {"x": 1, "y": 1}]
    study = study_of(points)
    runner = Counting()
    driver = opt.Optimizer(study, SPACE, opt.StudyConfig(seed=1), runner, 1000)
    asyncio.run(driver.run(len(points), 1))
    assert runner.runs.count((1, 1)) == 1
    states = [t.state for t in study.trials]
    assert states[3] == states[4] == optuna.trial.TrialState.PRUNED
    assert study.trials[4].user_attrs["same_as"] == 3
    assert study.trials[4].intermediate_values == study.trials[3].intermediate_values


def test_two_lanes_asking_for_the_same_point_run_it_once() -> None:
    points = [{"x": 3, "y": 3}, {"x": 3, "y": 3}, {"x": 3, "y": 3}, {"x": 3, "y": 3}]
    study = study_of(points)
    runner = Counting()
    driver = opt.Optimizer(study, SPACE, opt.StudyConfig(seed=1, prune=False), runner, 1000)
    asyncio.run(driver.run(len(points), 2))
    assert runner.runs == [(3, 3)]
    assert sorted(t.user_attrs.get("same_as", -1) for t in study.trials) == [-1, 0, 0, 0]
    assert all(t.values == [6.0] for t in study.trials)


def test_the_api_and_the_cli_say_which_trial_a_repeat_took_its_results_from() -> None:
    import importlib

    from rich.console import Console

    cli = importlib.import_module("tradewind.cli.optimize")  # the package exports the command under this name
    from tradewind.web.routes.studies import TrialOut

    points = [{"x": 2, "y": 3}, {"x": 2, "y": 3}]
    study = study_of(points)
    driver = opt.Optimizer(study, SPACE, opt.StudyConfig(seed=1, prune=False), Counting(), 1000)
    asyncio.run(driver.run(len(points), 1))
    rows = opt.trial_rows(study)
    assert [TrialOut(**r).same_as for r in rows] == [None, 0]
    console = Console(record=True, width=200)
    cli._report(
        "s", opt.StudyConfig(seed=1, prune=False), rows[1:], {"complete": 2}, 1.0, ["x", "y"], 1, console
    )
    text = console.export_text()
    assert "same as #0" in text and "1 of them repeated an earlier trial's parameters" in text
