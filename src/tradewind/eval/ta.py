"""The `ta` library: indicators computed on the host with TA-Lib, cached per window and shared.

Strategies call ``ta.sma(c.close, 20)``; the arrays travel as ids into the ``ArrayStore`` and results
come back as read-only views. Identical calls on the same window (market, timeframe, candle) are
computed once, whichever strategy asks first, and shared by every other strategy on that window.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import numpy as np
import talib

from tradewind.eval.window import CandleWindow

ID_BITS = 24  # array ids: 1 .. 2**24 - 1, recycled
LEN_BITS = 17  # arrays are at most 131071 long
OFF_BITS = 21  # a view starts at most 2**21 - 1 candles into its array (backtests: ~4 years of 1m)
MAX_ID = (1 << ID_BITS) - 1
MAX_LEN = (1 << LEN_BITS) - 1
MAX_OFF = (1 << OFF_BITS) - 1
# An array travels to Lua as a descriptor, id << 38 | offset << 17 | length, and comes back tagged,
# TAG | descriptor, so no ordinary number is mistaken for one and a window over a longer array needs
# no copy. Its values travel as bytes (one Lua string that `string.unpack` reads) when small enough.
TAG = 1 << 62
MAX_BYTES_LEN = 262_144  # longer arrays (a long backtest's history) are read element by element
MAX_WINDOWS = 32
SCRATCH = 4096  # arrays computed on partial views (backtests) live this long: within one decide()
SCRATCH_BYTES = 256 * 1024 * 1024  # ... and take at most this much memory together


class TAError(Exception):
    """A bad call to a ta function; the message is for the strategy's author."""


class _Window:
    __slots__ = ("ids", "cache", "series", "codes")

    def __init__(self, series: bool = False) -> None:
        self.ids: list[int] = []
        self.codes: tuple[Any, ...] = ()
        self.cache: dict[tuple[Any, ...], Any] = {}
        self.series = series  # a whole history that a backtest slides views along


# Indicators whose value at a candle depends only on the last few candles: over a sliding window they
# equal the indicator of the whole history (up to float rounding), except the first `lookback` values,
# which a window computed on its own leaves NaN. A backtest computes them once over the history.
LOCAL = frozenset({"sma", "wma", "highest", "lowest", "roc", "mom", "willr", "cci"})


def descriptor(array_id: int, offset: int, length: int) -> int:
    return TAG | (array_id << 38) | (offset << LEN_BITS) | length


def _tail(arr: np.ndarray) -> tuple[Any, Any]:
    """The last value and the one before (None where the array is shorter), as Python numbers."""
    n = len(arr)
    return (arr[-1].item() if n else None), (arr[-2].item() if n > 1 else None)


def _as(arr: np.ndarray, dtype: type) -> np.ndarray:
    return arr if arr.dtype == dtype and arr.flags.c_contiguous else np.ascontiguousarray(arr, dtype=dtype)


class ArrayStore:
    """Arrays visible to Lua by integer id, grouped per window, and the shared indicator cache."""

    def __init__(self) -> None:
        self._arrays: dict[int, tuple[np.ndarray, _Window | None, int]] = {}  # id -> array, owner, NaN lead
        self._windows: OrderedDict[tuple[str, int, int], _Window] = OrderedDict()
        self._scratch: deque[tuple[int, int]] = deque()  # (id, bytes), oldest first
        self._scratch_bytes = 0
        self._bytes: dict[int, bytes | bool] = {}
        # results of calls on live windows by the caller's own key: one dict lookup on the hot path;
        # emptied whenever a window is dropped, so a recycled array id never meets an old entry
        self.hot: dict[Any, Any] = {}
        self._bound: tuple[CandleWindow | None, tuple[int, ...]] = (None, ())
        self._next = 1
        self.computed = 0  # indicator computations (cache misses), for tests and metrics

    def _register(self, arr: np.ndarray, owner: _Window | None, lead: int = 0) -> int:
        while True:
            i = self._next
            self._next = self._next % MAX_ID + 1
            if i not in self._arrays:
                break
        self._arrays[i] = (arr, owner, lead)
        if owner is not None:
            owner.ids.append(i)
        else:
            self._scratch.append((i, arr.nbytes))
            self._scratch_bytes += arr.nbytes
            while len(self._scratch) > 1 and (
                len(self._scratch) > SCRATCH or self._scratch_bytes > SCRATCH_BYTES
            ):
                old, size = self._scratch.popleft()
                self._scratch_bytes -= size
                self._forget(old)
        return i

    def _forget(self, array_id: int) -> None:
        self._arrays.pop(array_id, None)
        self._bytes.pop(array_id, None)

    def data(self, array_id: int) -> bytes | bool:
        """An array's values as native-endian bytes (float64, int64 for times), or False when too long."""
        found = self._bytes.get(array_id)
        if found is None:
            entry = self._arrays.get(array_id)
            if entry is None:
                raise TAError("this array belongs to an old candle; compute it again in decide()")
            arr = entry[0]
            found = self._bytes[array_id] = arr.tobytes() if len(arr) <= MAX_BYTES_LEN else False
        return found

    def bind(self, window: CandleWindow) -> tuple[Any, ...]:
        """Descriptors of the window's open, high, low, close, volume and time arrays, then the last two
        values of each (what strategies read most: they cross over with the descriptors)."""
        if self._bound[0] is window:  # a thousand strategies in a row on one window
            return self._bound[1]
        n = len(window)
        if n > MAX_LEN:
            raise TAError(f"a window holds at most {MAX_LEN} candles")
        key = (window.key, window.last_time, n)
        w = self._windows.get(key)
        if w is None:
            w = _Window()
            for arr in (window.open, window.high, window.low, window.close, window.volume):
                self._register(_as(arr, np.float64), w)
            self._register(_as(window.time, np.int64), w)
            w.codes = tuple((i << 38) | n for i in w.ids) + tuple(
                v for i in w.ids for v in _tail(self._arrays[i][0])
            )
            self._windows[key] = w
            while len(self._windows) > MAX_WINDOWS:
                _, old = self._windows.popitem(last=False)
                self.hot.clear()
                for i in old.ids:
                    self._forget(i)
        else:
            self._windows.move_to_end(key)
        self._bound = (window, w.codes)
        return w.codes

    def bind_series(self, arrays: list[np.ndarray]) -> tuple[int, ...]:
        """Codes of whole series (a backtest's history); Lua looks at them through moving views."""
        w = _Window(series=True)
        n = len(arrays[0])
        if n > MAX_OFF:
            raise TAError(f"a backtest handles at most {MAX_OFF:,} candles; use a longer timeframe")
        arrays = [_as(a, np.float64) for a in arrays[:5]] + [_as(arrays[5], np.int64)]
        return tuple((self._register(a, w) << 38) | min(n, MAX_LEN) for a in arrays)

    def get(self, array_id: int, i: Any) -> Any:
        entry = self._arrays.get(array_id)
        if entry is None:
            raise TAError("this array belongs to an old candle; compute it again in decide()")
        arr = entry[0]
        if i.__class__ is not int:
            if not isinstance(i, float) or i != int(i):
                return None
            i = int(i)
        if 1 <= i <= len(arr):
            v = arr[i - 1]
            return int(v) if arr.dtype.kind == "i" else float(v)
        return None

    def _resolve(self, desc: int) -> tuple[np.ndarray, _Window | None, bool]:
        array_id = (desc >> 38) & MAX_ID
        offset = (desc >> LEN_BITS) & MAX_OFF
        length = desc & MAX_LEN
        entry = self._arrays.get(array_id)
        if entry is None:
            raise TAError("this array belongs to an old candle; compute it again in decide()")
        arr, owner, lead = entry
        if offset == 0 and length == len(arr):
            return arr, owner, True
        view = arr[offset : offset + length]
        if lead:  # an indicator of the whole history, seen as the window would have computed it
            view = view.copy()
            view[: min(lead, length)] = np.nan
        return view, owner, False

    def call(
        self, name: str, args: tuple[Any, ...], to_array: Callable[[Any], np.ndarray], hot_key: Any = None
    ) -> Any:
        """Run ta.<name>(args) where array arguments are descriptors (or Lua tables, converted by ``to_array``).
        A result cached for a live window is also remembered under ``hot_key`` in ``hot``."""
        first = args[0] if args else None
        if first.__class__ is int and first >= TAG:
            entry = self._arrays.get((first >> 38) & MAX_ID)
            if entry is not None and entry[1] is not None:
                if entry[1].series and name in LOCAL:
                    found = self._series(name, args, entry[1])
                    if found is not None:
                        return found
                hit = entry[1].cache.get((name, args))  # a cached result for this window
                if hit is not None:
                    if hot_key is not None and not entry[1].series:
                        self.hot[hot_key] = hit
                    return hit
        out, owner = self._compute(name, args, to_array)
        if owner is not None and hot_key is not None and not owner.series:
            self.hot[hot_key] = out
        return out

    def _series(self, name: str, args: tuple[Any, ...], owner: _Window) -> tuple[Any, ...] | None:
        """ta.<name> over a sliding view of a history: computed once for the whole history, answered as
        a view with the same offset and length, and the NaN lead. None when it does not apply."""
        window = None
        key: list[Any] = [name, "series"]
        for a in args:
            if a.__class__ is int and a >= TAG:
                w = a & ((1 << 38) - 1)  # offset and length
                if window is None:
                    window = w
                entry = self._arrays.get((a >> 38) & MAX_ID)
                if w != window or entry is None or entry[1] is not owner or entry[2]:
                    return None  # views that do not line up, or a derived array: compute on the window
                key.append(a >> 38)
            elif a is None or a.__class__ in (int, float, bool):
                key.append(a)
            else:
                return None
        k = tuple(key)
        hit = owner.cache.get(k)
        if hit is None:
            values = [
                self._arrays[a >> 38 & MAX_ID][0] if a.__class__ is int and a >= TAG else a for a in args
            ]
            try:
                result = FUNCTIONS[name](*values)
            except TAError:
                raise
            except Exception as exc:
                raise TAError(f"ta.{name}: {exc}") from None
            self.computed += 1
            result = np.asarray(result, dtype=np.float64)
            valid = ~np.isnan(result)
            lead = int(valid.argmax()) if valid.any() else len(result)
            hit = owner.cache[k] = (self._register(result, owner, lead), lead)
        rid, lead = hit
        return 1, (rid << 38) | window, None, None, lead  # type: ignore[operator]

    def _compute(
        self, name: str, args: tuple[Any, ...], to_array: Callable[[Any], np.ndarray]
    ) -> tuple[Any, _Window | None]:
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
                arr, owner, whole = self._resolve(a)
                window = window or owner
                cacheable = cacheable and whole and owner is not None
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
        owner = window if cacheable else None
        if isinstance(result, bool):
            out: tuple[Any, ...] = (0, result)
        else:
            results = result if isinstance(result, tuple) else (result,)
            flat: list[Any] = [len(results)]
            for r in results:
                arr = _as(np.asarray(r), np.float64)
                rid = self._register(arr, owner)
                flat += ((rid << 38) | len(arr), *_tail(arr), -1)
            out = tuple(flat)
        if owner is not None:
            owner.cache[(name, args)] = out
        return out, owner


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


def _stoch(
    h: Any, lo: Any, c: Any, fastk: Any = None, slowk: Any = None, slowd: Any = None
) -> tuple[np.ndarray, ...]:
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
NAMES = sorted(FUNCTIONS)  # Lua calls a function by its number in this list (from 1)
MULTI = frozenset({"macd", "bbands", "stoch", "stochrsi"})  # the functions that return several arrays

# The name the eval contracts use for the shared store: arrays visible to Lua and the indicator cache.
IndicatorCache = ArrayStore
