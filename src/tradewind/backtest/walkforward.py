"""Walk-forward analysis: optimise on a train window, run the best parameters on the test window after it.

- **Windows** are cut by time from the first candle: rolling (each train window ``train`` long, moved on by
  ``test``), anchored (each train window starts at the first candle and grows by ``test``), or one split at a
  share of the candles. Only whole test windows are made. Each run gets **only its window's candles** (the
  arrays are sliced before the engine sees them): a train run holds no candle at or after its test window's
  start, a test run no candle before it (the strategy starts cold there, as it did in the train window).
- **Optimisation** is ``tradewind.backtest.optimize``'s ``Optimizer`` (Optuna, TPE or NSGA-II, median pruning
  on prefixes), its trials run in this process (``LocalRunner``: the engine in threads, Lua running without
  the GIL) on an in-memory study per window.
- **Stitching**: every window's runs start with the same cash; the stitched curves chain them by return (a
  window's curve scaled to start where the previous one ended). A position open at a window's end is valued
  at its last close (exit reason ``end``), as at the end of any backtest.
- **Walk-forward efficiency** (Pardo's): the annualised out-of-sample return over the annualised in-sample
  return, annualised linearly (``return_pct × year / span``). Out of sample: the stitched return over the total
  test span. In sample: the mean of the windows' annualised train returns (train windows overlap when rolling,
  so they are not chained in time). None when the in-sample figure is not positive.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradewind.backtest import engine
from tradewind.backtest import optimize as opt
from tradewind.sandbox.params import ParamSpec

YEAR_MS = 365 * 24 * 3_600_000
UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
Backtest = Callable[..., engine.Result]  # engine.run's signature


class WalkForwardError(ValueError):
    """A walk-forward that cannot run; the message says why."""


def parse_span(text: str) -> int:
    """``30d``, ``12h``, ``90m`` or ``2w`` as milliseconds."""
    found = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text or "")
    if not found or int(found.group(1)) <= 0:
        raise WalkForwardError(f"{text!r}: write a length such as 30d, 12h, 90m or 2w")
    return int(found.group(1)) * UNITS[found.group(2)]


@dataclass(frozen=True)
class Span:
    """Candles ``first`` .. ``stop - 1`` of the data, the period [start, end) in epoch ms."""

    first: int
    stop: int
    start: int
    end: int

    @property
    def candles(self) -> int:
        return self.stop - self.first

    def as_dict(self) -> dict[str, Any]:
        return {"from": engine.iso(self.start), "to": engine.iso(self.end), "candles": self.candles}


@dataclass(frozen=True)
class Window:
    index: int
    train: Span
    test: Span


def windows(
    times: np.ndarray,
    *,
    train_ms: int | None = None,
    test_ms: int | None = None,
    anchored: bool = False,
    split: float | None = None,
) -> list[Window]:
    """The train/test windows over candle ``times`` (epoch ms, ascending): ``split`` (a share of the candles for
    one train window, the rest its test window), or rolling/``anchored`` windows of ``train_ms``/``test_ms``."""
    n = len(times)
    if n < 4:
        raise WalkForwardError("too few candles for a walk-forward")
    bar = int(np.median(np.diff(times[: min(n, 1000)])))
    data_end = int(times[-1]) + bar

    def span(a: int, b: int) -> Span:
        i, j = int(np.searchsorted(times, a)), int(np.searchsorted(times, b))
        return Span(i, j, a, b)

    if split is not None:
        if not 0 < split < 1:
            raise WalkForwardError("--split is the train share of the candles, between 0 and 1")
        cut = int(n * split)
        if cut < 2 or n - cut < 2:
            raise WalkForwardError("--split leaves fewer than two candles on one side")
        start, mid = int(times[0]), int(times[cut])
        return [Window(0, Span(0, cut, start, mid), Span(cut, n, mid, data_end))]
    if train_ms is None or test_ms is None:
        raise WalkForwardError("give --train and --test lengths, or --split")
    out: list[Window] = []
    t0 = int(times[0])
    k = 0
    while True:
        train_start = t0 if anchored else t0 + k * test_ms
        train_end = t0 + train_ms + k * test_ms
        test_end = train_end + test_ms
        if test_end > data_end:
            break
        w = Window(len(out), span(train_start, train_end), span(train_end, test_end))
        if w.train.candles >= 2 and w.test.candles >= 2:
            out.append(w)
        k += 1
    if not out:
        days = (data_end - t0) / 86_400_000
        raise WalkForwardError(
            f"the data ({days:.1f} days) is shorter than one train window and one test window"
        )
    return out


def cut(arrays: dict[str, np.ndarray], span: Span) -> dict[str, np.ndarray]:
    """The window's candles alone: what the engine is given (copies, so nothing can reach past them)."""
    return {k: np.ascontiguousarray(v[span.first : span.stop]).copy() for k, v in arrays.items()}


class LocalRunner:
    """``optimize.BusRunner``'s contract in this process: a trial's stage is the engine over the first ``upto``
    candles of the train window, run in a thread of ``pool``."""

    def __init__(
        self,
        code: str,
        arrays: dict[str, np.ndarray],
        config: opt.StudyConfig,
        name: str,
        pool: ThreadPoolExecutor,
        backtest: Backtest = engine.run,
    ) -> None:
        self.code, self.arrays, self.config, self.name = code, arrays, config, name
        self.pool, self.backtest = pool, backtest

    def _run(self, params: dict[str, Any], upto: int) -> dict[str, Any]:
        arrays = {k: v[:upto] for k, v in self.arrays.items()}
        result = self.backtest(self.code, arrays, params=params, name=self.name, **self.config.run_settings())
        return result.metrics()

    async def run(
        self,
        params: dict[str, Any],
        stages: list[int],
        cut: list[float | None],
        on_worker: Callable[[str], None] | None = None,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        objective, direction = opt.OBJECTIVES[self.config.objectives[0]]
        summaries: list[dict[str, Any]] = []
        for upto in stages:
            summary = await asyncio.get_running_loop().run_in_executor(self.pool, self._run, params, upto)
            if summary.get("error"):
                raise opt.TrialFailed(str(summary["error"]))
            summaries.append(summary)
            if not opt.goes_on_after(summaries, objective, direction == "maximize", cut):
                break
        return summaries, ["in-process"]


@dataclass
class WindowResult:
    window: Window
    params: dict[str, Any]
    trials: dict[str, int]
    in_sample: dict[str, Any]  # the best parameters over the train window: metrics, objective
    out_of_sample: dict[str, Any]  # ... and over the test window
    is_equity: np.ndarray = field(repr=False)
    is_times: np.ndarray = field(repr=False)
    oos_equity: np.ndarray = field(repr=False)
    oos_times: np.ndarray = field(repr=False)


def annualised(return_pct: float, span_ms: int) -> float:
    """A return over ``span_ms`` scaled linearly to a year (Pardo's walk-forward efficiency)."""
    return return_pct * YEAR_MS / span_ms if span_ms > 0 else 0.0


def _span_ms(span: Span, bar_ms: int) -> int:
    return span.candles * bar_ms


@dataclass
class WalkForward:
    """The whole analysis (see the module): every window, the stitched curves, the efficiency."""

    mode: str
    objective: str
    cash: float
    bar_ms: int
    windows: list[WindowResult]

    def stitched(self, which: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """The chained equity of the in-sample (``is``) or out-of-sample (``oos``) runs, their times, and the
        index where each window's segment starts."""
        level = self.cash
        parts: list[np.ndarray] = []
        times: list[np.ndarray] = []
        starts: list[int] = []
        for w in self.windows:
            eq, t = (w.is_equity, w.is_times) if which == "is" else (w.oos_equity, w.oos_times)
            starts.append(sum(len(p) for p in parts))
            if len(eq):
                scaled = eq * (level / self.cash)
                parts.append(scaled)
                times.append(t)
                level = float(scaled[-1])
        if not parts:
            return np.empty(0), np.empty(0, dtype=np.int64), starts
        return np.concatenate(parts), np.concatenate(times), starts

    def efficiency(self) -> dict[str, Any]:
        oos_eq, _, _ = self.stitched("oos")
        oos_span = sum(_span_ms(w.window.test, self.bar_ms) for w in self.windows)
        oos_return = (float(oos_eq[-1]) / self.cash - 1) * 100 if len(oos_eq) else 0.0
        is_ann = [
            annualised(w.in_sample["return_pct"], _span_ms(w.window.train, self.bar_ms)) for w in self.windows
        ]
        ann_oos = annualised(oos_return, oos_span)
        ann_is = float(np.mean(is_ann)) if is_ann else 0.0
        return {
            "oos_return_pct": oos_return,
            "oos_annualised_pct": ann_oos,
            "is_annualised_pct": ann_is,
            "wfe": ann_oos / ann_is if ann_is > 0 else None,
        }

    def as_dict(self, points: int = 1000) -> dict[str, Any]:
        rows = []
        for w in self.windows:
            ann_is = annualised(w.in_sample["return_pct"], _span_ms(w.window.train, self.bar_ms))
            ann_oos = annualised(w.out_of_sample["return_pct"], _span_ms(w.window.test, self.bar_ms))
            rows.append(
                {
                    "index": w.window.index,
                    "train": w.window.train.as_dict(),
                    "test": w.window.test.as_dict(),
                    "params": w.params,
                    "trials": w.trials,
                    "in_sample": w.in_sample,
                    "out_of_sample": w.out_of_sample,
                    "wfe": ann_oos / ann_is if ann_is > 0 else None,
                }
            )
        oos_eq, oos_t, _ = self.stitched("oos")
        is_eq, is_t, starts = self.stitched("is")
        # the in-sample segments overlap in time when rolling: each point keeps its window's number
        window_of = np.searchsorted(np.asarray(starts[1:]), np.arange(len(is_eq)), side="right")
        is_curve = [
            [int(window_of[i]), *p]
            for i, p in zip(_thin_index(len(is_eq), points), engine.curve(is_eq, is_t, points), strict=True)
        ]
        return {
            "mode": self.mode,
            "objective": self.objective,
            "cash": self.cash,
            "windows": rows,
            **self.efficiency(),
            "oos_equity": engine.curve(oos_eq, oos_t, points),
            "is_equity": is_curve,
        }


def _thin_index(n: int, points: int) -> list[int]:
    """The indices ``engine.curve`` keeps of a series of ``n``."""
    if not n:
        return []
    step = max(1, n // points)
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return idx


async def analyse(
    code: str,
    arrays: dict[str, np.ndarray],
    space: dict[str, ParamSpec],
    config: opt.StudyConfig,
    wins: list[Window],
    *,
    mode: str,
    trials: int,
    parallel: int = 2,
    name: str = "strategy",
    backtest: Backtest = engine.run,
    progress: Callable[[int, int], None] | None = None,
) -> WalkForward:
    """Optimise on every train window, run the best parameters on its test window. Every engine run is named
    ``{name}/w{index}/train`` or ``.../test`` (a strategy error names its window)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if len(config.objectives) != 1:
        raise WalkForwardError("a walk-forward optimises one objective")
    objective = config.objectives[0]
    metric = opt.OBJECTIVES[objective][0]
    times = arrays["time"]
    bar_ms = int(np.median(np.diff(times[: min(len(times), 1000)])))
    results: list[WindowResult] = []
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="walkforward") as pool:
        for w in wins:
            train, test = cut(arrays, w.train), cut(arrays, w.test)
            study = opt.open_study(None, f"walkforward-{w.index}", config, resume=False)
            runner = LocalRunner(code, train, config, f"{name}/w{w.index}/train", pool, backtest)
            driver = opt.Optimizer(study, space, config, runner, w.train.candles)
            await driver.run(trials, parallel)
            best = opt.best_numbers(study)
            states: dict[str, int] = {}
            for t in study.get_trials(deepcopy=False):
                states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
            if not best:
                raise WalkForwardError(f"window {w.index}: no trial completed ({states})")
            params = study.trials[best[0]].user_attrs["params"]

            def run(
                arr: dict[str, np.ndarray], label: str, params: dict[str, Any] = params, w: Window = w
            ) -> engine.Result:
                return backtest(
                    code, arr, params=params, name=f"{name}/w{w.index}/{label}", **config.run_settings()
                )

            loop = asyncio.get_running_loop()
            is_run = await loop.run_in_executor(pool, run, train, "train")
            oos_run = await loop.run_in_executor(pool, run, test, "test")
            for r in (is_run, oos_run):
                if r.error:
                    raise WalkForwardError(r.error)
            is_s, oos_s = is_run.metrics(), oos_run.metrics()
            is_s["objective"], oos_s["objective"] = float(is_s[metric]), float(oos_s[metric])
            results.append(
                WindowResult(
                    w,
                    params,
                    states,
                    _clean(is_s),
                    _clean(oos_s),
                    is_run.equity,
                    is_run.times,
                    oos_run.equity,
                    oos_run.times,
                )
            )
            if progress is not None:
                progress(len(results), len(wins))
    return WalkForward(mode, objective, config.cash, bar_ms, results)


def run(
    code: str,
    arrays: dict[str, np.ndarray],
    space: dict[str, ParamSpec],
    config: opt.StudyConfig,
    *,
    mode: str,
    train_ms: int | None = None,
    test_ms: int | None = None,
    split: float | None = None,
    max_windows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **kw: Any,
) -> WalkForward:
    """The ``windows`` of ``mode`` (rolling, anchored or split) over the candles, at most ``max_windows``,
    ``analyse``d (``kw``: trials, parallel, name, backtest); ``progress`` hears of every window, from 0."""
    wins = windows(
        arrays["time"], train_ms=train_ms, test_ms=test_ms, anchored=mode == "anchored", split=split
    )
    if max_windows is not None and len(wins) > max_windows:
        raise WalkForwardError(f"{len(wins)} windows: at most {max_windows}; make the test window longer")
    if progress is not None:
        progress(0, len(wins))
    return asyncio.run(analyse(code, arrays, space, config, wins, mode=mode, progress=progress, **kw))


def _clean(s: dict[str, Any]) -> dict[str, Any]:
    keep = ("objective", *opt.METRICS)
    return {k: (None if isinstance(s.get(k), float) and not math.isfinite(s[k]) else s.get(k)) for k in keep}
