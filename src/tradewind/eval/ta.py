"""The `ta` library: indicators computed on the host with TA-Lib, cached per window and shared.

Strategies call ``ta.sma(c.close, 20)``; the arrays travel as ids into the ``ArrayStore`` and results
come back as read-only views. Identical calls on the same window (market, timeframe, candle) are
computed once, whichever strategy asks first, and shared by every other strategy on that window.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import talib

from tradewind.eval.window import CandleWindow

SLOT_BITS = 20
LEN_BITS = 17  # arrays are at most 131071 long
TAG = 1 << 52  # Lua passes array ids with this bit set, so no ordinary number is mistaken for one
MAX_LEN = (1 << LEN_BITS) - 1
MAX_WINDOWS = 32
NAN = float("nan")


class TAError(Exception):
    """A bad call to a ta function; the message is for the strategy's author."""


class _Window:
    __slots__ = ("arrays", "cache", "base")

    def __init__(self, base: int, arrays: list[np.ndarray]) -> None:
        self.base = base
        self.arrays = arrays
        self.cache: dict[tuple[Any, ...], Any] = {}


class ArrayStore:
    """Arrays visible to Lua by integer id, grouped per window, and the shared indicator cache."""

    def __init__(self) -> None:
        self._windows: OrderedDict[tuple[str, int, int], _Window] = OrderedDict()
        self._by_slot: dict[int, _Window] = {}
        self._next_slot = 1
        self.computed = 0  # indicator computations (cache misses), for tests and metrics

    def bind(self, window: CandleWindow) -> tuple[int, ...]:
        """Codes ((id << 17) | length) of the window's open, high, low, close, volume and time arrays."""
        key = (window.key, window.last_time, len(window))
        w = self._windows.get(key)
        if w is None:
            slot = self._next_slot
            self._next_slot += 1
            arrays = [window.open, window.high, window.low, window.close, window.volume, window.time]
            w = _Window(slot << SLOT_BITS, arrays)
            self._windows[key] = w
            self._by_slot[slot] = w
            while len(self._windows) > MAX_WINDOWS:
                _, old = self._windows.popitem(last=False)
                self._by_slot.pop(old.base >> SLOT_BITS, None)
        else:
            self._windows.move_to_end(key)
        n = len(window)
        return tuple(((w.base + i) << LEN_BITS) | n for i in range(6))

    def _lookup(self, array_id: int) -> tuple[_Window, np.ndarray]:
        array_id = int(array_id) & (TAG - 1)
        w = self._by_slot.get(array_id >> SLOT_BITS)
        if w is None:
            raise TAError("this array belongs to an old candle; compute it again in decide()")
        return w, w.arrays[array_id & ((1 << SLOT_BITS) - 1)]

    def get(self, array_id: int, i: Any) -> Any:
        _, arr = self._lookup(array_id)
        if not isinstance(i, (int, float)) or i != i:
            return None
        i = int(i)
        if 1 <= i <= len(arr):
            v = arr[i - 1]
            return int(v) if arr.dtype.kind == "i" else float(v)
        return None

    def length(self, array_id: int) -> int:
        return len(self._lookup(array_id)[1])

    def add(self, w: _Window, arr: np.ndarray) -> int:
        w.arrays.append(arr)
        return w.base + len(w.arrays) - 1

    def call(self, name: str, args: tuple[Any, ...], to_array: Callable[[Any], np.ndarray]) -> Any:
        """Run ta.<name>(args) where array arguments are ids (or Lua tables, converted by ``to_array``)."""
        first = args[0] if args else None
        if first.__class__ is int and first >= TAG:  # the hot path: a cached result for this window
            w = self._by_slot.get((first & (TAG - 1)) >> SLOT_BITS)
            if w is not None:
                hit = w.cache.get((name, args))
                if hit is not None:
                    return hit
        return self._compute(name, args, to_array)

    def _compute(self, name: str, args: tuple[Any, ...], to_array: Callable[[Any], np.ndarray]) -> Any:
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise TAError(f"ta.{name} does not exist; see docs/strategies.md for the list")
        window: _Window | None = None
        cacheable = True
        values: list[Any] = []
        for a in args:
            if isinstance(a, bool) or a is None:
                values.append(a)
            elif isinstance(a, int) and a >= TAG:
                w, arr = self._lookup(a)
                window = window or w
                values.append(arr)
            elif isinstance(a, (int, float)):
                values.append(a)
            else:
                values.append(to_array(a))
                cacheable = False  # a table the strategy built: not shared
        try:
            result = spec(*values)
        except TAError:
            raise
        except Exception as exc:
            raise TAError(f"ta.{name}: {exc}") from None
        self.computed += 1
        if isinstance(result, bool):
            out: Any = result
        else:
            target = window or self._scratch()
            results = result if isinstance(result, tuple) else (result,)
            codes = []
            for r in results:
                arr = np.asarray(r, dtype=np.float64)
                codes.append(-((self.add(target, arr) << LEN_BITS) | len(arr)))
            out = tuple(codes) if len(codes) > 1 else codes[0]
        if cacheable and window is not None:
            window.cache[(name, args)] = out
        return out

    def _scratch(self) -> _Window:
        dummy = CandleWindow.from_rows([], "scratch")
        self.bind(dummy)
        return self._windows[("scratch", 0, 0)]


# -- the functions ---------------------------------------------------------------------------------
def _series(x: Any, name: str = "series") -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TAError(f"expected an array for {name}, got {type(x).__name__}")
    if x.dtype != np.float64:
        x = x.astype(np.float64)
    return np.ascontiguousarray(x)


def _period(n: Any, default: int, name: str = "period") -> int:
    if n is None:
        return default
    if not isinstance(n, (int, float)) or n != n or int(n) != n or not 1 <= n <= 100_000:
        raise TAError(f"{name} must be a whole number from 1 to 100000, got {n!r}")
    return int(n)


def _num(x: Any, default: float, name: str) -> float:
    if x is None:
        return default
    if not isinstance(x, (int, float)) or x != x:
        raise TAError(f"{name} must be a number, got {x!r}")
    return float(x)


def _one(fn: Callable[..., np.ndarray], default: int) -> Callable[..., np.ndarray]:
    def f(src: Any, n: Any = None) -> np.ndarray:
        return fn(_series(src), timeperiod=_period(n, default))

    return f


def _hlc(fn: Callable[..., np.ndarray], default: int) -> Callable[..., np.ndarray]:
    def f(h: Any, lo: Any, c: Any, n: Any = None) -> np.ndarray:
        return fn(_series(h, "high"), _series(lo, "low"), _series(c, "close"), timeperiod=_period(n, default))

    return f


def _macd(src: Any, fast: Any = None, slow: Any = None, signal: Any = None) -> tuple[np.ndarray, ...]:
    return talib.MACD(_series(src), fastperiod=_period(fast, 12, "fast"), slowperiod=_period(slow, 26, "slow"),
                      signalperiod=_period(signal, 9, "signal"))  # fmt: skip


def _bbands(src: Any, n: Any = None, up: Any = None, down: Any = None) -> tuple[np.ndarray, ...]:
    return talib.BBANDS(_series(src), timeperiod=_period(n, 20), nbdevup=_num(up, 2.0, "deviations up"),
                        nbdevdn=_num(down, _num(up, 2.0, "deviations up"), "deviations down"))  # fmt: skip


def _stoch(h: Any, lo: Any, c: Any, fastk: Any = None, slowk: Any = None, slowd: Any = None) -> tuple[np.ndarray, ...]:
    return talib.STOCH(_series(h), _series(lo), _series(c), fastk_period=_period(fastk, 14, "k period"),
                       slowk_period=_period(slowk, 3, "k smoothing"), slowd_period=_period(slowd, 3, "d period"))  # fmt: skip


def _stochrsi(src: Any, n: Any = None, fastk: Any = None, fastd: Any = None) -> tuple[np.ndarray, ...]:
    return talib.STOCHRSI(_series(src), timeperiod=_period(n, 14), fastk_period=_period(fastk, 5, "k period"),
                          fastd_period=_period(fastd, 3, "d period"))  # fmt: skip


def _mfi(h: Any, lo: Any, c: Any, v: Any, n: Any = None) -> np.ndarray:
    return talib.MFI(_series(h), _series(lo), _series(c), _series(v, "volume"), timeperiod=_period(n, 14))


def _obv(src: Any, v: Any) -> np.ndarray:
    return talib.OBV(_series(src), _series(v, "volume"))


def _sar(h: Any, lo: Any, accel: Any = None, maximum: Any = None) -> np.ndarray:
    return talib.SAR(_series(h), _series(lo), acceleration=_num(accel, 0.02, "acceleration"),
                     maximum=_num(maximum, 0.2, "maximum"))  # fmt: skip


def _vwap(h: Any, lo: Any, c: Any, v: Any, n: Any = None) -> np.ndarray:
    # TA-Lib has no VWAP: the volume-weighted typical price, cumulative over the window or rolling over n.
    typical = (_series(h) + _series(lo) + _series(c)) / 3.0
    vol = _series(v, "volume")
    pv, vv = np.cumsum(typical * vol), np.cumsum(vol)
    if n is not None:
        k = _period(n, 0)
        pv_k, vv_k = pv.copy(), vv.copy()
        pv_k[k:] -= pv[:-k]
        vv_k[k:] -= vv[:-k]
        pv_k[: k - 1] = np.nan
        pv, vv = pv_k, vv_k
    with np.errstate(invalid="ignore", divide="ignore"):
        return pv / vv


def _cross(direction: int) -> Callable[[Any, Any], bool]:
    def f(a: Any, b: Any) -> bool:
        a = a if isinstance(a, np.ndarray) else None
        if a is None:
            raise TAError("crossover/crossunder need an array as the first argument")
        if len(a) < 2:
            return False
        if isinstance(b, np.ndarray):
            if len(b) < 2:
                return False
            b1, b0 = float(b[-1]), float(b[-2])
        elif isinstance(b, (int, float)):
            b1 = b0 = float(b)
        else:
            raise TAError("crossover/crossunder need an array or a number as the second argument")
        a1, a0 = float(a[-1]), float(a[-2])
        if direction > 0:
            return a1 > b1 and a0 <= b0
        return a1 < b1 and a0 >= b0

    return f


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sma": _one(talib.SMA, 30),
    "ema": _one(talib.EMA, 30),
    "wma": _one(talib.WMA, 30),
    "dema": _one(talib.DEMA, 30),
    "tema": _one(talib.TEMA, 30),
    "rsi": _one(talib.RSI, 14),
    "roc": _one(talib.ROC, 10),
    "mom": _one(talib.MOM, 10),
    "highest": _one(talib.MAX, 30),
    "lowest": _one(talib.MIN, 30),
    "macd": _macd,
    "bbands": _bbands,
    "atr": _hlc(talib.ATR, 14),
    "adx": _hlc(talib.ADX, 14),
    "cci": _hlc(talib.CCI, 14),
    "willr": _hlc(talib.WILLR, 14),
    "stoch": _stoch,
    "stochrsi": _stochrsi,
    "mfi": _mfi,
    "obv": _obv,
    "sar": _sar,
    "vwap": _vwap,
    "crossover": _cross(1),
    "crossunder": _cross(-1),
}
