"""Bias checks of a strategy's decisions: does a decision depend on the window's length, or on later candles?

Both compare **decisions** (the letter of every candle and, when ``decide`` returned a table, its size, exits
and limit), taken with the backtest's own loop (``StrategyRuntime.decide_series``), not trades: a changed
decision shows up even where the fill model would hide it.

- **Recursive indicators**: the same run with the lookback window halved and doubled. An indicator computed
  from a seed on the window's first candle (``ema``, ``rsi``, ``macd``, ...) gives other values in a window of
  another length; one shorter than the window (``sma(close, 10)`` in 500 candles) does not. The report gives the
  candles whose decision changed and the candle from which on the runs agree.
- **Look-ahead**: the decisions up to a cut candle t, taken on the whole data, against the same decisions taken
  with the candles after t removed and with them changed (prices reflected about t's close, volumes doubled),
  at ``points`` cuts spread over the data. Everything a strategy reaches goes into that run: the candle window,
  the ``ta`` indicators (a backtest computes some over the whole history and shows them through views), its
  globals and ``init``. A decision that changes is one that saw a later candle (or is not a function of the
  data at all, such as one reading the clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tradewind.backtest.engine import DEFAULT_LIMITS, iso
from tradewind.sandbox.runtime import StrategyError, StrategyRuntime
from tradewind.sandbox.ta import ArrayStore

LETTERS = {ord("l"): "long", ord("s"): "short", ord("n"): "neutral"}


class CheckError(ValueError):
    """A check that cannot run (the strategy failed); the message says why."""


@dataclass
class Decisions:
    """Every candle's decision: the letters, and the extras of those that returned a table."""

    codes: np.ndarray
    extras: dict[int, Any]

    def at(self, i: int) -> Any:
        word = LETTERS.get(int(self.codes[i]), "?")
        extra = self.extras.get(i)
        if extra is None:
            return word
        keys = ("size", "stop_loss", "take_profit", "trailing_stop", "limit", "expire")
        return {"position": word, **{k: v for k, v in zip(keys, extra, strict=False) if v is not None}}

    def differing(self, other: Decisions, upto: int) -> np.ndarray:
        """The candles < ``upto`` whose decision differs."""
        diff = self.codes[:upto] != other.codes[:upto]
        for i in set(self.extras) | set(other.extras):
            if i < upto and self.extras.get(i) != other.extras.get(i):
                diff[i] = True
        return np.flatnonzero(diff)


def decisions(
    code: str,
    arrays: dict[str, np.ndarray],
    *,
    params: dict[str, Any] | None = None,
    lookback: int = 500,
    name: str = "strategy",
) -> Decisions:
    """The decisions of every candle, as a backtest takes them (a fresh runtime: its top level and ``init`` run
    first); raises CheckError on a strategy error."""
    n = len(arrays["time"])
    try:
        rt = StrategyRuntime(
            code, name=name, params=params or {}, limits=DEFAULT_LIMITS, indicators=ArrayStore()
        )
    except StrategyError as exc:
        raise CheckError(str(exc)) from None
    try:
        parts: list[str] = []
        extras: dict[int, Any] = {}
        rt.decide_series(arrays, lookback, 0, n, parts, extras)
    except StrategyError as exc:
        raise CheckError(str(exc)) from None
    finally:
        rt.close()
    return Decisions(np.frombuffer("".join(parts).encode(), dtype=np.uint8).copy(), extras)


# -- recursive indicators ------------------------------------------------------------------------------------
@dataclass
class Variant:
    """The run with another lookback against the base run."""

    lookback: int
    changed: list[int]  # candle indices whose decision differs
    n: int

    @property
    def agree_from(self) -> int | None:
        """The first candle from which on every decision agrees (None: they differ at the last candle)."""
        if not self.changed:
            return 0
        last = self.changed[-1]
        return last + 1 if last + 1 < self.n else None


@dataclass
class RecursiveReport:
    lookback: int
    candles: int
    variants: list[Variant]
    base: Decisions = field(repr=False)
    others: list[Decisions] = field(repr=False)
    times: np.ndarray = field(repr=False)

    @property
    def passed(self) -> bool:
        return all(not v.changed for v in self.variants)

    def as_dict(self, examples: int = 10) -> dict[str, Any]:
        out = []
        for v, other in zip(self.variants, self.others, strict=True):
            agree = v.agree_from
            out.append(
                {
                    "lookback": v.lookback,
                    "changed": len(v.changed),
                    "first_changed": iso(int(self.times[v.changed[0]])) if v.changed else None,
                    "last_changed": iso(int(self.times[v.changed[-1]])) if v.changed else None,
                    "agree_from": None if agree is None else iso(int(self.times[agree])),
                    "agree_from_candle": agree,
                    "examples": [
                        {
                            "time": iso(int(self.times[i])),
                            "candle": i,
                            "base": self.base.at(i),
                            "variant": other.at(i),
                        }
                        for i in v.changed[:examples]
                    ],
                }
            )
        return {"passed": self.passed, "lookback": self.lookback, "candles": self.candles, "variants": out}


def recursive_check(
    code: str,
    arrays: dict[str, np.ndarray],
    *,
    params: dict[str, Any] | None = None,
    lookback: int = 500,
    name: str = "strategy",
) -> RecursiveReport:
    """The decisions with ``lookback``, against those with it halved and doubled."""
    n = len(arrays["time"])
    base = decisions(code, arrays, params=params, lookback=lookback, name=name)
    variants, others = [], []
    for lb in sorted({max(1, lookback // 2), lookback * 2} - {lookback}):
        other = decisions(code, arrays, params=params, lookback=lb, name=name)
        variants.append(Variant(lb, base.differing(other, n).tolist(), n))
        others.append(other)
    return RecursiveReport(lookback, n, variants, base, others, arrays["time"])


# -- look-ahead ----------------------------------------------------------------------------------------------
def changed_future(arrays: dict[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
    """The candles with every one after ``t`` changed: prices reflected about candle t's close (a rise becomes
    a fall), volumes doubled; times kept."""
    out = {k: v.copy() for k, v in arrays.items()}
    pivot = float(arrays["close"][t])
    for k in ("open", "high", "low", "close"):
        out[k][t + 1 :] = np.maximum(2 * pivot - arrays[k][t + 1 :], pivot * 0.01)
    out["high"][t + 1 :], out["low"][t + 1 :] = (
        np.maximum(out["high"][t + 1 :], out["low"][t + 1 :]),
        np.minimum(out["high"][t + 1 :], out["low"][t + 1 :]),
    )
    out["volume"][t + 1 :] = arrays["volume"][t + 1 :] * 2
    return out


@dataclass
class Cut:
    """One cut candle: the decisions up to it that differ with later candles removed, and changed."""

    candle: int
    removed: list[int]
    changed: list[int]


@dataclass
class LookaheadReport:
    candles: int
    cuts: list[Cut]
    full: Decisions = field(repr=False)
    times: np.ndarray = field(repr=False)

    @property
    def passed(self) -> bool:
        return all(not c.removed and not c.changed for c in self.cuts)

    def as_dict(self) -> dict[str, Any]:
        bad = [c for c in self.cuts if c.removed or c.changed]
        return {
            "passed": self.passed,
            "candles": self.candles,
            "cuts": len(self.cuts),
            "decisions_compared": sum(c.candle + 1 for c in self.cuts) * 2,
            "failed_cuts": [
                {
                    "cut": iso(int(self.times[c.candle])),
                    "candle": c.candle,
                    "differ_when_removed": [iso(int(self.times[i])) for i in c.removed[:10]],
                    "differ_when_changed": [iso(int(self.times[i])) for i in c.changed[:10]],
                }
                for c in bad
            ],
        }


def cut_points(n: int, points: int, seed: int | None = None) -> list[int]:
    """``points`` cut candles over 1 .. n-2: evenly spread, and with a seed shifted at random within each stretch."""
    if n < 3:
        raise CheckError("too few candles for a look-ahead check")
    points = max(1, min(points, n - 2))
    edges = np.linspace(1, n - 1, points + 1)
    if seed is None:
        return sorted({int(e) for e in edges[1:] - 1})
    rng = np.random.default_rng(seed)
    return sorted(
        {
            int(rng.integers(int(a), max(int(a) + 1, int(b))))
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        }
    )


def lookahead_check(
    code: str,
    arrays: dict[str, np.ndarray],
    *,
    params: dict[str, Any] | None = None,
    lookback: int = 500,
    points: int = 20,
    seed: int | None = None,
    name: str = "strategy",
) -> LookaheadReport:
    """The decisions up to each cut candle on the whole data, against the same with the later candles removed
    and changed."""
    n = len(arrays["time"])
    full = decisions(code, arrays, params=params, lookback=lookback, name=name)
    cuts = []
    for t in cut_points(n, points, seed):
        removed = decisions(
            code,
            {k: v[: t + 1].copy() for k, v in arrays.items()},
            params=params,
            lookback=lookback,
            name=name,
        )
        changed = decisions(code, changed_future(arrays, t), params=params, lookback=lookback, name=name)
        cuts.append(Cut(t, full.differing(removed, t + 1).tolist(), full.differing(changed, t + 1).tolist()))
    return LookaheadReport(n, cuts, full, arrays["time"])
