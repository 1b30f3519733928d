"""The `ta` library: indicators computed on the host with TA-Lib, cached per window and shared.

Strategies call ``ta.sma(c.close, 20)``; the arrays travel as descriptors into the ``ArrayStore`` and
results come back as read-only views. Identical calls on the same window (market, timeframe, candle) are
computed once, whichever strategy asks first, and shared by every other strategy on that window.

A descriptor names an array only for the runtime it was handed to: each runtime resolves descriptors
through its own handle table (``grants``: array id -> the array it was given under that id), never
through the store's, so a number, a recycled id or a descriptor another strategy was given names
nothing (see ``StrategyRuntime``). The shared caches are consulted only after every array argument has
been resolved that way.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import numpy as np
import talib

from tradewind.sandbox.window import CandleWindow

ID_BITS = 24  # array ids: 1 .. 2**24 - 1, recycled
LEN_BITS = 17  # arrays are at most 131071 long
OFF_BITS = 21  # a view starts at most 2**21 - 1 candles into its array (backtests: ~4 years of 1m)
MAX_ID = (1 << ID_BITS) - 1
MAX_LEN = (1 << LEN_BITS) - 1
MAX_OFF = (1 << OFF_BITS) - 1
# An array travels to Lua as a descriptor, id << 38 | offset << 17 | length, and comes back tagged,
# TAG | descriptor (the sandbox sends a strategy's numbers that large as floats, so no number is taken
# for one), and a window over a longer array needs no copy. A descriptor is only ever resolved in the
# handle table of the runtime that sent it. Its values travel as bytes (one Lua string that
# `string.unpack` reads) when small enough.
TAG = 1 << 62
MAX_BYTES_LEN = 262_144  # longer arrays are read element by element (a live window is at most MAX_LEN)
# A backtest's whole-history arrays travel in blocks of 2**SERIES_BLOCK_SHIFT values (128 KB of bytes,
# 256 KB once unpacked in Lua), whatever their length: see sandbox.lua's load_block.
SERIES_BLOCK_SHIFT = 14
MAX_WINDOWS = 32
SCRATCH = 4096  # arrays computed on partial views (backtests) live this long: within one decide()
SCRATCH_BYTES = 256 * 1024 * 1024  # ... and take at most this much memory together
WINDOW_CACHE_BYTES = 32 * 1024 * 1024  # indicator results cached per window; past it, results are not shared
# What a computation costs the strategy that asks for it, in instructions of its budget (about 4 ns
# each): the call's fixed overhead on the host, and one per input value. Hits of the cache cost nothing.
CALL_COST = 2500
NUMBERS = (int, float, bool)
GONE = (
    "this array belongs to an old candle or to no array this strategy was given; compute it again in decide()"
)


class TAError(Exception):
    """A bad call to a ta function; the message is for the strategy's author."""


class Array:
    """An array visible to Lua: its values (None once the store has let it go), the window that owns it
    (None for scratch arrays, which are never shared), its NaN lead and, once asked for, its bytes."""

    __slots__ = ("arr", "owner", "lead", "data")

    def __init__(self, arr: np.ndarray, owner: _Window | None, lead: int) -> None:
        self.arr: np.ndarray | None = arr
        self.owner, self.lead = owner, lead
        self.data: bytes | bool | None = None

    def as_bytes(self) -> bytes | bool:
        """The values as native-endian bytes (float64, int64 for times), or False when too long."""
        found = self.data
        if found is None:
            arr = self.arr
            if arr is None:
                raise TAError(GONE)
            found = self.data = arr.tobytes() if len(arr) <= MAX_BYTES_LEN else False
        return found

    def block(self, k: int, shift: int) -> bytes:
        """Values k << shift .. ((k + 1) << shift) - 1 (fewer at the end) as native-endian bytes."""
        arr = self.arr
        if arr is None:
            raise TAError(GONE)
        if k.__class__ is not int or k < 0:
            return b""
        return arr[k << shift : (k + 1) << shift].tobytes()

    def get(self, i: Any) -> Any:
        arr = self.arr
        if arr is None:
            raise TAError(GONE)
        if i.__class__ is not int:
            if not isinstance(i, float) or i != int(i):
                return None
            i = int(i)
        if 1 <= i <= len(arr):
            v = arr[i - 1]
            return int(v) if arr.dtype.kind == "i" else float(v)
        return None


Grants = dict[int, Array]  # one runtime's handle table: array id -> the array it was given


class _Window:
    __slots__ = ("ids", "cache", "series", "codes", "grants", "candles", "hot", "nbytes", "alive")

    def __init__(self, series: bool = False) -> None:
        self.ids: list[int] = []
        self.codes: tuple[Any, ...] = ()
        self.cache: dict[tuple[Any, ...], Any] = {}
        self.series = series  # a whole history that a backtest slides views along
        self.grants: Grants = {}  # the candle arrays, handed to every runtime that binds the window
        self.candles: frozenset[int] = frozenset()  # their tagged descriptors, as Lua sends them back
        # results of calls whose array arguments are all candle arrays of this window, by the caller's
        # own key: one dict lookup on the hot path, safe without resolving the arguments because every
        # runtime bound to this window was handed all of its candle arrays
        self.hot: dict[Any, tuple[Any, Grants]] = {}
        self.nbytes = 0  # of cached results
        self.alive = True  # False once the store has dropped it


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
    """Arrays visible to Lua by integer id, grouped per window, and the shared indicator cache. The store
    hands arrays out; which of them a runtime may name is the runtime's own table (``Grants``)."""

    def __init__(self) -> None:
        self._arrays: dict[int, Array] = {}
        self._windows: OrderedDict[tuple[str, int, int], _Window] = OrderedDict()
        self._scratch: deque[tuple[int, int]] = deque()  # (id, bytes), oldest first
        self._scratch_bytes = 0
        self._bound: tuple[CandleWindow, _Window] | None = None
        self._next = 1
        self.computed = 0  # indicator computations (cache misses), for tests and metrics

    def _register(self, arr: np.ndarray, owner: _Window | None, lead: int = 0) -> tuple[int, Array]:
        while True:
            i = self._next
            self._next = self._next % MAX_ID + 1
            if i not in self._arrays:
                break
        entry = self._arrays[i] = Array(arr, owner, lead)
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
        return i, entry

    def _forget(self, array_id: int) -> None:
        entry = self._arrays.pop(array_id, None)
        if entry is not None:  # runtimes may still hold it in their tables: it names nothing from now on
            entry.arr = entry.data = None

    def scratch(self, arr: np.ndarray) -> tuple[int, Array]:
        """Register an array of the strategy's own (a plain Lua table passed to ta): never shared."""
        if len(arr) > MAX_LEN:
            raise TAError(f"an array passed to ta holds at most {MAX_LEN:,} values")
        return self._register(arr, None)

    def bind(self, window: CandleWindow) -> _Window:
        """The store's window for these candles: ``codes`` (descriptors of the open, high, low, close,
        volume and time arrays, then the last two values of each: what strategies read most), ``grants``
        (the arrays, for the runtime's table) and ``hot``."""
        bound = self._bound
        if bound is not None and bound[0] is window:  # a thousand strategies in a row on one window
            return bound[1]
        n = len(window)
        if n > MAX_LEN:
            raise TAError(f"a window holds at most {MAX_LEN} candles")
        key = (window.key, window.last_time, n)
        w = self._windows.get(key)
        if w is None:
            w = _Window()
            arrays = [
                _as(arr, np.float64)
                for arr in (window.open, window.high, window.low, window.close, window.volume)
            ]
            arrays.append(_as(window.time, np.int64))
            for arr in arrays:
                self._register(arr, w)
            w.grants = {i: self._arrays[i] for i in w.ids}
            w.candles = frozenset(TAG | (i << 38) | n for i in w.ids)
            w.codes = tuple((i << 38) | n for i in w.ids) + tuple(v for arr in arrays for v in _tail(arr))
            self._windows[key] = w
            while len(self._windows) > MAX_WINDOWS:
                _, old = self._windows.popitem(last=False)
                old.alive = False
                old.hot.clear()  # a runtime still bound to it must resolve its arguments again
                old.cache.clear()
                for i in old.ids:
                    self._forget(i)
        else:
            self._windows.move_to_end(key)
        self._bound = (window, w)
        return w

    def bind_series(self, arrays: list[np.ndarray]) -> _Window:
        """Whole series (a backtest's history) that Lua looks at through moving views: ``codes`` and
        ``grants`` as ``bind``'s."""
        w = _Window(series=True)
        n = len(arrays[0])
        if n > MAX_OFF:
            raise TAError(f"a backtest handles at most {MAX_OFF:,} candles; use a longer timeframe")
        arrays = [_as(a, np.float64) for a in arrays[:5]] + [_as(arrays[5], np.int64)]
        ids = [self._register(a, w)[0] for a in arrays]
        w.grants = {i: self._arrays[i] for i in ids}
        w.codes = tuple((i << 38) | min(n, MAX_LEN) for i in ids)
        return w

    @staticmethod
    def _view(entry: Array, desc: int) -> tuple[np.ndarray, bool]:
        """The values a descriptor names in its array, and whether that is the whole array."""
        arr = entry.arr
        assert arr is not None
        offset = (desc >> LEN_BITS) & MAX_OFF
        length = desc & MAX_LEN
        if offset == 0 and length == len(arr):
            return arr, True
        view = arr[offset : offset + length]
        if entry.lead:  # an indicator of the whole history, seen as the window would have computed it
            view = view.copy()
            view[: min(entry.lead, length)] = np.nan
        return view, False

    def candle(self, array_id: int, windows: dict[_Window, None]) -> Array | None:
        """A candle array of one of ``windows`` (those a runtime bound: it was handed their candles)."""
        entry = self._arrays.get(array_id)
        if entry is not None and entry.owner in windows and array_id in entry.owner.grants:
            return entry
        return None

    def call(
        self,
        name: str,
        args: tuple[Any, ...],
        grants: Grants,
        windows: dict[_Window, None],
        hot_key: Any = None,
    ) -> tuple[Any, int]:
        """Run ta.<name>(args) for a runtime whose handle table is ``grants`` plus the candles of the
        ``windows`` it bound: array arguments are descriptors it was given. Answers the values for Lua and
        the cost of the work done (in instructions), and adds the result's arrays to ``grants``. A result
        for a window's own candle arrays is also remembered under ``hot_key`` in that window's ``hot``."""
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise TAError(f"ta.{name} does not exist; see docs/strategies.md for the list")
        # Every array argument is resolved through the caller's table before any cache is looked at:
        # a descriptor it was not given must not find another strategy's result.
        entries: list[Array | None] = []
        get, mask = grants.get, MAX_ID
        for a in args:
            if a.__class__ is int and a >= TAG:
                i = (a >> 38) & mask
                entry = get(i) or self.candle(i, windows)
                if entry is None or entry.arr is None:
                    raise TAError(GONE)
                entries.append(entry)
            elif a is None or a.__class__ in NUMBERS:
                entries.append(None)
            else:
                raise TAError(f"ta.{name}: expected an array or a number, got {type(a).__name__}")
        first = entries[0] if entries else None
        owner = first.owner if first is not None else None
        if owner is not None:
            if owner.series and name in LOCAL:
                found = self._series(name, args, entries, owner)
                if found is not None:
                    grants.update(found[1])
                    return found[0], found[2]
            hit = owner.cache.get((name, args))  # a cached result for this window
            if hit is not None:
                self._remember(owner, args, hot_key, hit)
                grants.update(hit[1])
                return hit[0], 0
        return self._compute(name, spec, args, entries, grants, hot_key)

    def _remember(self, owner: _Window, args: tuple[Any, ...], hot_key: Any, hit: tuple[Any, Grants]) -> None:
        if hot_key is not None and not owner.series:
            candles = owner.candles
            if all(a in candles for a in args if a.__class__ is int and a >= TAG):
                owner.hot[hot_key] = hit

    def _series(
        self, name: str, args: tuple[Any, ...], entries: list[Array | None], owner: _Window
    ) -> tuple[Any, Grants, int] | None:
        """ta.<name> over a sliding view of a history: computed once for the whole history, answered as
        a view with the same offset and length, and the NaN lead. None when it does not apply."""
        window = None
        key: list[Any] = [name, "series"]
        values: list[Any] = []
        for a, entry in zip(args, entries, strict=True):
            if entry is not None:
                w = a & ((1 << 38) - 1)  # offset and length
                if window is None:
                    window = w
                if w != window or entry.owner is not owner or entry.lead:
                    return None  # views that do not line up, or a derived array: compute on the window
                key.append(a >> 38 & MAX_ID)
                values.append(entry.arr)
            elif a is None or a.__class__ in (int, float, bool):
                key.append(a)
                values.append(a)
            else:
                return None
        k = tuple(key)
        hit = owner.cache.get(k)
        cost = 0
        if hit is None:
            try:
                result = FUNCTIONS[name](*values)
            except TAError:
                raise
            except Exception as exc:
                raise TAError(f"ta.{name}: {exc}") from None
            self.computed += 1
            cost = CALL_COST + sum(len(v) for v in values if isinstance(v, np.ndarray))
            result = np.asarray(result, dtype=np.float64)
            valid = ~np.isnan(result)
            lead = int(valid.argmax()) if valid.any() else len(result)
            rid, entry = self._register(result, owner, lead)
            hit = owner.cache[k] = (rid, lead, {rid: entry})
        rid, lead, give = hit
        assert window is not None  # the first argument is an array (see call)
        return (1, (rid << 38) | window, None, None, lead), give, cost

    def _compute(
        self,
        name: str,
        spec: Callable[..., Any],
        args: tuple[Any, ...],
        entries: list[Array | None],
        grants: Grants,
        hot_key: Any,
    ) -> tuple[Any, int]:
        window: _Window | None = None
        cacheable = True
        values: list[Any] = []
        cost = CALL_COST
        for a, entry in zip(args, entries, strict=True):
            if entry is None:
                values.append(a)
                continue
            arr, whole = self._view(entry, a)
            window = window or entry.owner
            cacheable = cacheable and whole and entry.owner is not None
            values.append(arr)
            cost += len(arr)
        try:
            result = spec(*values)
        except TAError:
            raise
        except Exception as exc:
            raise TAError(f"ta.{name}: {exc}") from None
        self.computed += 1
        owner = window if cacheable and window is not None and window.nbytes < WINDOW_CACHE_BYTES else None
        give: Grants = {}  # what a cache hit hands the next runtime
        if isinstance(result, bool):
            out: tuple[Any, ...] = (0, result)
        else:
            results = result if isinstance(result, tuple) else (result,)
            flat: list[Any] = [len(results)]
            for r in results:
                arr = _as(np.asarray(r), np.float64)
                rid, entry = self._register(arr, owner)
                grants[rid] = entry
                if owner is not None:
                    give[rid] = entry
                    owner.nbytes += arr.nbytes
                flat += ((rid << 38) | len(arr), *_tail(arr), -1)
            out = tuple(flat)
        if owner is not None:
            hit = owner.cache[(name, args)] = (out, give)
            self._remember(owner, args, hot_key, hit)
        return out, cost


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
    return talib.MACD(
        _series(src),
        fastperiod=_period(fast, 12, "fast"),
        slowperiod=_period(slow, 26, "slow"),
        signalperiod=_period(signal, 9, "signal"),
    )


def _bbands(src: Any, n: Any = None, up: Any = None, down: Any = None) -> tuple[np.ndarray, ...]:
    return talib.BBANDS(
        _series(src),
        timeperiod=_period(n, 20),
        nbdevup=_num(up, 2.0, "deviations up"),
        nbdevdn=_num(down, _num(up, 2.0, "deviations up"), "deviations down"),
    )


def _stoch(
    h: Any, lo: Any, c: Any, fastk: Any = None, slowk: Any = None, slowd: Any = None
) -> tuple[np.ndarray, ...]:
    return talib.STOCH(
        _series(h),
        _series(lo),
        _series(c),
        fastk_period=_period(fastk, 14, "k period"),
        slowk_period=_period(slowk, 3, "k smoothing"),
        slowd_period=_period(slowd, 3, "d period"),
    )


def _stochrsi(src: Any, n: Any = None, fastk: Any = None, fastd: Any = None) -> tuple[np.ndarray, ...]:
    return talib.STOCHRSI(
        _series(src),
        timeperiod=_period(n, 14),
        fastk_period=_period(fastk, 5, "k period"),
        fastd_period=_period(fastd, 3, "d period"),
    )


def _mfi(h: Any, lo: Any, c: Any, v: Any, n: Any = None) -> np.ndarray:
    return talib.MFI(_series(h), _series(lo), _series(c), _series(v, "volume"), timeperiod=_period(n, 14))


def _obv(src: Any, v: Any) -> np.ndarray:
    return talib.OBV(_series(src), _series(v, "volume"))


def _sar(h: Any, lo: Any, accel: Any = None, maximum: Any = None) -> np.ndarray:
    return talib.SAR(
        _series(h),
        _series(lo),
        acceleration=_num(accel, 0.02, "acceleration"),
        maximum=_num(maximum, 0.2, "maximum"),
    )


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
        vwap: np.ndarray = pv / vv
    return vwap


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
