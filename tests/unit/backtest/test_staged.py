"""An optimisation trial's stages in one pass (``engine.run_staged``) and the cut the worker is sent
(``optimize.floors``/``goes_on``): the same runs as one run per prefix, the same verdicts as Optuna's
median pruner, and the driver asking for the stages left when the worker stopped at a cut that moved."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import optuna
import pytest

from tests.unit.backtest.test_engine_parity import CASES, fingerprint, generated
from tradewind.backtest import engine
from tradewind.backtest import optimize as opt
from tradewind.sandbox.params import ParamSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize("case", ["sma-generated", "exits-generated", "failing-generated"])
def test_the_stages_are_the_runs_of_their_prefixes(case: str) -> None:
    code, source, kw = CASES[case]
    arrays = generated(int(source.split(":")[1]))
    n = len(arrays["time"])
    stages = [n // 4, n // 2, n]
    told: list[int] = []

    def go_on(upto: int, result: engine.Result) -> bool:
        told.append(upto)
        return True

    staged = engine.run_staged(code, arrays, stages, go_on, name=case, **kw)
    assert told == stages[: len(staged)]
    for upto, got in zip(stages, staged, strict=False):
        alone = engine.run(code, {k: v[:upto] for k, v in arrays.items()}, name=case, **kw)
        assert fingerprint(got) == fingerprint(alone)
        assert got.summary()["sharpe"] == alone.summary()["sharpe"]
    if (
        case == "failing-generated"
    ):  # the strategy fails in the last stage: its run ends at the failing candle
        assert staged[-1].error is not None and staged[-1].candles < n


def test_the_stages_stop_where_go_on_says() -> None:
    code, source, kw = CASES["sma-generated"]
    arrays = generated(40_000)
    staged = engine.run_staged(code, arrays, [10_000, 20_000, 40_000], lambda upto, r: upto < 20_000, **kw)
    assert [r.candles for r in staged] == [10_000, 20_000]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_cut_is_optunas_median_pruner(direction: str) -> None:
    """``goes_on`` under ``floors`` says what ``trial.should_prune`` says, value after value."""
    study = optuna.create_study(
        direction=direction, pruner=optuna.pruners.MedianPruner(n_startup_trials=opt.PRUNER_STARTUP)
    )
    stages = [25, 50, 100]
    for i, (a, b) in enumerate([(1.0, 2.0), (3.0, 1.0), (-2.0, 5.0), (0.5, 0.5), (4.0, -1.0)]):
        trial = study.ask()
        trial.report(a, 25)
        trial.report(b, 50)
        study.tell(trial, a + b)
        if i < opt.PRUNER_STARTUP - 1:
            assert opt.floors(study, stages) == []  # no cut before the pruner's startup trials
    cut = opt.floors(study, stages)
    assert len(cut) == 2
    for first in [-3.0, 0.4, 0.5, 1.0, 1.1, 2.9, 3.0, 6.0]:
        for second in [-1.0, 0.5, 1.0, 2.0, 7.0]:
            trial = study.ask()
            trial.report(first, 25)
            pruned = trial.should_prune()
            assert opt.goes_on([first], cut[0], direction == "maximize") == (not pruned), (first, cut)
            if not pruned:
                trial.report(second, 50)
                pruned = trial.should_prune()
                assert opt.goes_on([first, second], cut[1], direction == "maximize") == (not pruned)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def test_no_number_goes_on() -> None:
    assert (
        opt.goes_on([math.nan], 1.0, True) and opt.goes_on([], 1.0, True) and opt.goes_on([0.0], None, True)
    )


class Stopping:
    """A runner whose worker stops after the first stage (a cut that Optuna, with no complete trial yet,
    does not share): the driver must ask again for the stages left."""

    def __init__(self) -> None:
        self.asked: list[list[int]] = []

    async def run(
        self,
        params: dict[str, Any],
        stages: list[int],
        cut: list[float | None],
        on_worker: Callable[[str], None] | None = None,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        self.asked.append(list(stages))
        summary = {"sharpe": float(params["x"]), "candles": stages[0]}
        return [summary], ["w1"]


def test_the_driver_asks_for_the_stages_left() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=4))
    space = {"x": ParamSpec("x", "int", min=1, max=5, default=1)}
    runner = Stopping()
    driver = opt.Optimizer(study, space, opt.StudyConfig(seed=1), runner, 1000)
    asyncio.run(driver.run(1, 1))
    assert runner.asked == [[250, 500, 1000], [500, 1000], [1000]]
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and set(trial.intermediate_values) == {250, 500}
