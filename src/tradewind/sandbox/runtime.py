"""The Lua sandbox: Lua 5.4 states with limits, a safe environment per strategy and `ta`.

A backtest or a validation runs a strategy in a Lua state of its own; the eval worker runs all the
assignments of one strategy version (one user's code) in one state (``LuaState``), each assignment in an
environment of its own, and evaluates them on a candle in one call (``LuaState.decide_all``).

Every call into user code goes through ``StrategyRuntime`` which turns any failure into a
``StrategyError`` naming the strategy, the candle, the line and the limit. What a count hook cannot
stop (a C function such as a pathological ``string.find``) is stopped from outside: the eval worker
runs runtimes in a process it kills on a wall-clock deadline (see ``executor.py``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

import lupa.lua54 as lua
import numpy as np

from tradewind.sandbox import ta as _ta
from tradewind.sandbox.params import DeclarationError, ParamSpec, parse_declaration
from tradewind.sandbox.ta import GONE, MULTI, NAMES, TAG, Array, ArrayStore, Grants, TAError
from tradewind.sandbox.window import CandleWindow

if TYPE_CHECKING:
    from tradewind.bus.messages import Tick, TickState

BOOT = resources.files("tradewind.sandbox").joinpath("sandbox.lua").read_text()
_boot_chunk: bytes | None = None


def _boot_bytecode() -> bytes:
    """The bootstrap compiled once per process, without debug information: each runtime loads it in
    about half the memory of compiling the text (a thousand runtimes share the CPU caches)."""
    global _boot_chunk
    if _boot_chunk is None:
        compiler = lua.LuaRuntime(encoding=None)
        dump = compiler.eval('function(src) return string.dump(assert(load(src, "=boot", "t")), true) end')
        _boot_chunk = dump(BOOT.encode())
    return _boot_chunk


HOOK_STEP = 1000
# A runtime's handle table is swept of the arrays the store let go of once it holds more than this (a
# thousand runtimes each keep one: it stays small), and of the windows the store dropped past WINDOWS_CAP.
GRANTS_CAP = 256
WINDOWS_CAP = 64
CHARGE_BATCH = 250_000  # host work (instructions, ~1 ms) charged to the Lua budget at once
MAX_ERROR = 1000
_LINE = re.compile(r"^strategy:(\d+): ")
POSITIONS = ("long", "short", "neutral")
MAX_EXPIRE = 10_000  # candles a limit entry may stay open
# the fields of a table decide returns, in the order Lua hands them over
TABLE_FIELDS = ("position", "size", "note", "stop_loss", "take_profit", "trailing_stop", "limit", "expire")
QUOTE_SIDES = ("buy", "sell")
NO_DECIDE = "the strategy defines no function decide(c, params)"
NO_ON_TICK = "the strategy defines no function on_tick(t, c, params)"


class StrategyError(Exception):
    """A strategy failed: syntax, runtime error, bad return value, or a limit."""

    def __init__(
        self,
        strategy: str,
        reason: str,
        *,
        candle_time: int | None = None,
        line: int | None = None,
        limit: str | None = None,
    ) -> None:
        self.strategy, self.reason, self.candle_time, self.line, self.limit = (
            strategy,
            reason,
            candle_time,
            line,
            limit,
        )
        super().__init__(self.message())

    def message(self) -> str:
        where = []
        if self.candle_time is not None:
            when = dt.datetime.fromtimestamp(self.candle_time / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            where.append(f"candle {when}")
        if self.line is not None:
            where.append(f"line {self.line}")
        prefix = f"strategy '{self.strategy}'" + (f" ({', '.join(where)})" if where else "")
        return f"{prefix}: {self.reason}"


class Unverified(Exception):
    """A run without the count hook (``Limits.hooked`` False) that could not be proved to be the hooked run:
    a batch of candles too slow for the proof, or any error (see sandbox.lua's ``runner``). The caller runs
    it again hooked, whose result is the run's."""


@dataclass(frozen=True)
class Limits:
    instructions: int = 10_000_000
    memory_mb: int = 32
    time_ms: int = 1000
    log_lines: int = 50
    log_bytes: int = 4096
    # False: no count hook. A backtest's decisions (``decide_series``) then run at about two thirds of the
    # cost and end in ``Unverified`` unless they are proved to be the hooked run's (the runner's proof, on the
    # process's CPU clock: no other thread of the process may be busy meanwhile); a strategy stuck in a loop
    # inside one candle is stopped by nothing in Lua: only in a process its parent kills when it gives no
    # sign of life (``LuaState.on_beat``). Live evaluation always runs hooked.
    hooked: bool = True

    @classmethod
    def from_settings(cls, settings: Any) -> Limits:
        return cls(
            instructions=settings.eval_instruction_limit,
            memory_mb=settings.eval_memory_mb,
            time_ms=settings.eval_time_limit_ms,
        )


@dataclass(frozen=True)
class Diagnostic:
    line: int | None
    message: str


class Decision(NamedTuple):
    """What ``decide`` (or ``on_tick``) returned. The exits are fractions of the entry's fill price
    (stop_loss, take_profit) or of the highest high since the entry (trailing_stop); ``limit`` is an entry
    price, ``expire`` the number of candles a limit entry stays open (None: the default, 1).

    From ``on_tick`` only: ``quotes``, the (side, price, amount) wanted now when it returned
    ``{quotes = {...}}`` ([]: cancel them all), and then ``position`` is None; both None when it returned
    nothing (keep the quotes as they are).

    ``plot``: the values of the strategy's own series at this candle (``plot = {name = value, ...}`` in the
    table), drawn on its chart; None when it named none (a NaN value is no point, and is left out)."""

    position: str | None
    size: float = 1.0
    note: str | None = None
    logs: list[str] = []  # noqa: RUF012 - never mutated: each decision gets its own list
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    limit: float | None = None
    expire: int | None = None
    quotes: list[tuple[str, float, float]] | None = None
    plot: dict[str, float] | None = None


# A backtest candle's extras (see ``StrategyRuntime.decide_series``):
# (size, stop_loss, take_profit, trailing_stop, limit, expire), None where absent (size None means 1).
Extras = tuple[float | None, float | None, float | None, float | None, float | None, int | None]
EXTRA_FIELDS = 7  # the numbers of one candle's record from Lua: the candle (from 1), then the six extras
EXTRA_SLICE = 1000  # records read from Lua at once (each read takes room on the strategy's Lua stack)
PLOT_MAX = 8  # series a decision may plot (sandbox.lua's PLOT_MAX)
MANY_MAX = 256  # assignments evaluated in one call into Lua (what it returns is on Lua's stack at once)
LETTERS = {"l": "long", "s": "short", "n": "neutral"}


class Plots:
    """A backtest's plot series (``plot = {...}`` in decide's tables): per series name, the values of candles
    ``start``..``n - 1`` of the run (NaN where it gave none). At most PLOT_MAX series, the first names the run
    gave; a later name is not recorded."""

    def __init__(self, n: int, start: int = 0) -> None:
        self.n = n
        self.start = max(0, min(start, n))
        self.values: dict[str, np.ndarray] = {}

    def _column(self, name: str) -> np.ndarray | None:
        col = self.values.get(name)
        if col is None and len(self.values) < PLOT_MAX:
            col = self.values[name] = np.full(self.n - self.start, np.nan)
        return col

    def add(self, i: int, plot: dict[str, float]) -> None:
        """The plot of candle i (0-based)."""
        if self.start <= i < self.n:
            for name, value in plot.items():
                col = self._column(name)
                if col is not None:
                    col[i - self.start] = value

    def add_flat(self, names: list[str], flat: Sequence[float]) -> None:
        """Values as sandbox.lua's ``series`` records them: (candle from 1, column from 1, value) each."""
        rows = np.asarray(flat, dtype=np.float64).reshape(-1, 3)
        for k, name in enumerate(names, 1):
            hit = rows[:, 1] == k
            if not hit.any():
                continue
            col = self._column(name)
            if col is not None:
                at = rows[hit, 0].astype(np.int64) - 1 - self.start
                keep = (at >= 0) & (at < len(col))
                col[at[keep]] = rows[hit, 2][keep]


def _deny(obj: Any, attr: Any, is_setting: bool) -> Any:
    raise AttributeError("access to Python objects is not allowed")


def _limit_text(limit: str, limits: Limits) -> str:
    if limit == "instructions":
        return f"instruction limit reached ({limits.instructions:,} instructions per evaluation)"
    if limit == "time":
        return f"time limit reached ({limits.time_ms} ms per evaluation)"
    return f"memory limit reached ({limits.memory_mb} MB per strategy)"


class LuaState:
    """One Lua state with the sandbox loaded, holding one strategy (a backtest's, a validation's) or all the
    assignments of one strategy version (the eval worker's: ``StrategyRuntime(..., state=...)``), each in a
    slot with its own environment. A strategy version belongs to one user, so a state never holds two
    users' code; its assignments differ only by their params and see nothing of each other (each has its
    own globals and library tables, see sandbox.lua's ``new_env``).

    The memory limit: a state of one strategy holds at most ``limits.memory_mb``. A shared state holds at
    most ``memory_mb`` per assignment it holds, and while one assignment starts (its top level and ``init``)
    or the state's assignments evaluate a candle it may grow by at most ``memory_mb`` over what it held
    before (``fit``): one runaway meets the limit as it would alone. The limit fails the evaluation that
    reached it (the host cannot tell which assignment holds the memory) and marks the state ``broken``:
    the eval worker then starts it again, every assignment's ``init`` with it."""

    def __init__(self, limits: Limits | None = None, indicators: ArrayStore | None = None) -> None:
        self.limits = limits or Limits()
        self.store = indicators or ArrayStore()
        self.slots: dict[int, StrategyRuntime] = {}
        self._next_slot = 1
        self._window: CandleWindow | None = None  # the window last evaluated
        self._bound: Any = None  # the store's window the candle table in Lua shows
        # The state's handle table: the arrays it was handed, by id, and the windows it bound (whose
        # candle arrays it was handed). Every descriptor that comes back from Lua is resolved there,
        # never in the store at large, so nothing names another state's array.
        self._grants: Grants = {}
        self._windows: dict[Any, None] = {}
        self._grants_cap = GRANTS_CAP
        self._hot: dict[Any, Any] = {}  # the bound window's results for its candle arrays
        self._uncharged = 0  # host work not yet charged to the instruction budget (at most CHARGE_BATCH)
        self._block_shift = _ta.SERIES_BLOCK_SHIFT
        self.broken = False
        self.on_beat: Callable[[], None] | None = (
            None  # told when a hook-free backtest runner says it is alive
        )
        self._cap = self.limits.memory_mb * 1024 * 1024
        self.rt: Any = lua.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_deny,
            max_memory=self._cap,
        )
        self.rt.execute("python = nil")
        self._collect = self.rt.globals().collectgarbage  # the host's, for collect_garbage()
        self._unpack = self.rt.globals().table.unpack  # the host's, for _array
        # our own bytecode, loaded from the host; strategies can only ever load text (see compile)
        boot = self.rt.globals().load(_boot_bytecode(), "=boot", "b")
        self.boot: Any = boot(
            self._get,
            self._data,
            self._ta,
            self._array,
            self._print,
            self.limits.instructions,
            HOOK_STEP if self.limits.hooked else 0,
            self.limits.time_ms / 1000,
            self.rt.table_from(NAMES),
            self.rt.table_from({n: True for n in MULTI}),
            self._block_shift,
            self._beat,
        )
        self._charge = self.boot["charge"]  # host work (ta computations) counted against the budget
        # Lua table lookups from Python cost microseconds: take the functions out once.
        self._mark = self.boot["mark"]
        self._run = self.boot["run"]
        self._step = self.boot["step"]
        self._many = self.boot["many"]
        self._tick = self.boot["tick"]
        self._make_candles = self.boot["candles"]
        self._series = self.boot["series"]

    def attach(self, runtime: StrategyRuntime) -> int:
        """A slot for ``runtime``, its memory allowance made room for (``fit``)."""
        slot = self._next_slot
        self._next_slot += 1
        self.slots[slot] = runtime
        self.fit()
        return slot

    def detach(self, slot: int) -> None:
        """Forget the assignment in ``slot``: its environment becomes garbage."""
        if self.slots.pop(slot, None) is not None and self.rt is not None:
            self.boot["forget"](slot)

    def fit(self) -> None:
        """The memory cap for what comes next (an assignment's start, an evaluation): ``memory_mb`` over what
        the state holds now, and at most ``memory_mb`` per assignment in all (see the class)."""
        if self.rt is None:
            return
        mb = self.limits.memory_mb * 1024 * 1024
        cap = max(mb, min(mb * len(self.slots), self.rt.get_memory_used() + mb))
        if cap != self._cap:
            self._cap = cap
            self.rt.set_max_memory(cap)

    # -- host functions called from Lua ----------------------------------------------------------------
    # Array ids come from Lua; each is looked up in this state's own table (_grants), so an id this
    # state was not handed, or one the store has since given to another array, names nothing.
    def _entry(self, array_id: int) -> Array:
        entry = self._grants.get(array_id) or self.store.candle(array_id, self._windows)
        if entry is None:
            raise RuntimeError(GONE)
        return entry

    def _beat(self) -> None:
        if self.on_beat is not None:
            self.on_beat()

    def _data(self, array_id: int, block: int | None = None) -> bytes | bool:
        """An array's bytes (False when too long), or with ``block`` those of one block of a backtest's
        whole-history array."""
        entry = self._entry(array_id)
        try:
            if block is not None:
                return entry.block(block, self._block_shift)
            return entry.as_bytes()
        except TAError as exc:
            raise RuntimeError(str(exc)) from None

    def _get(self, array_id: int, i: Any) -> Any:
        entry = self._entry(array_id)
        try:
            return entry.get(i)
        except TAError as exc:
            raise RuntimeError(str(exc)) from None

    def _ta(self, k: int, *args: Any) -> Any:
        # the hot path: the same call by another strategy on the window this one is bound to, whose
        # array arguments can only be that window's candle arrays (handed to every state bound to it)
        hit = self._hot.get((k, args))
        if hit is not None:
            self._grants.update(hit[1])  # the arrays of the result, now handed to this state too
            return hit[0]
        key = (k, args)
        while args and args[-1] is None:  # trailing nils of the fixed-arity Lua wrapper
            args = args[:-1]
        try:
            out, cost = self.store.call(NAMES[k - 1], args, self._grants, self._windows, key)
        except TAError as exc:
            raise RuntimeError(str(exc)) from None
        if cost:  # charged in batches: a call into Lua costs about as much as a small computation
            self._uncharged += cost
            if self._uncharged > CHARGE_BATCH:
                self._charge(self._uncharged)
                self._uncharged = 0
        if len(self._grants) > self._grants_cap:  # a backtest binds no windows: swept here
            self._sweep()
        return out

    def _array(self, tbl: Any, n: int) -> int:
        """Elements 1..n of a plain Lua table (checked in Lua to be numbers, read raw), as an array of
        this state's own: answers its tagged descriptor."""
        values = self._unpack(tbl, 1, n) if n > 1 else ((tbl[1],) if n == 1 else ())
        try:
            rid, entry = self.store.scratch(np.asarray(values, dtype=np.float64))
        except (TypeError, ValueError):
            raise RuntimeError("an array passed to ta must hold numbers only") from None
        except TAError as exc:
            raise RuntimeError(str(exc)) from None
        self._grants[rid] = entry
        return TAG | (rid << 38) | n

    def _print(self, slot: int, text: Any) -> None:
        runtime = self.slots.get(slot)
        if runtime is not None:
            runtime._print(text)

    def bind(self, window: CandleWindow) -> tuple[int, ...]:
        """The candle descriptors to hand Lua for ``window``; () when its candle table shows them already."""
        if window is self._window:  # the worker evaluates many strategies on one window object
            return ()
        self._window = window
        w = self.store.bind(window)
        if w is self._bound:
            return ()
        self._bound = w
        self._hot = w.hot
        windows = self._windows
        windows[w] = None
        if len(windows) > WINDOWS_CAP:  # the store keeps MAX_WINDOWS windows: forget those it dropped
            self._windows = {x: None for x in windows if x.alive}
        if len(self._grants) > self._grants_cap:  # results handed from the shared cache, over time
            self._sweep()
        return tuple(w.codes)

    def _sweep(self) -> None:
        """Drop from the handle table what the store has let go of: it names nothing anyway."""
        self._grants = {i: e for i, e in self._grants.items() if e.arr is not None}
        self._grants_cap = max(GRANTS_CAP, 2 * len(self._grants))

    def decide_all(
        self,
        window: CandleWindow,
        runtimes: Sequence[StrategyRuntime],
        candle_time: int | None = None,
        marks: Sequence[int] | None = None,
        progress: Any = None,
    ) -> list[Decision | StrategyError]:
        """``decide`` of each of ``runtimes`` (this state's) on the window, in one call into Lua per
        MANY_MAX of them: a Decision or the StrategyError of each, in order. One's error or limit fails
        that one only; with ``progress``, ``progress(0, marks[i])`` is called as the i-th starts (the
        executor's watchdog reads it)."""
        when = candle_time if candle_time is not None else (window.last_time or None)
        out: list[Decision | StrategyError] = []
        for lo in range(0, len(runtimes), MANY_MAX):
            todo: list[StrategyRuntime] = []
            todo_marks: list[int] = []
            for i in range(lo, min(lo + MANY_MAX, len(runtimes))):
                rt = runtimes[i]
                rt._candle_time = when
                if rt._log:
                    rt._log, rt._log_bytes = [], 0
                if rt._decide is None:
                    out.append(
                        rt._missing(
                            NO_DECIDE, 'it runs on ticks only: give the assignment the trigger "tick"'
                        )
                    )
                    continue
                todo.append(rt)
                if marks is not None:
                    todo_marks.append(marks[i])
            if not todo:
                continue
            codes = self.bind(window)
            args: list[Any] = [progress, len(codes), *codes, *(rt.slot for rt in todo)]
            if progress is not None:
                args += todo_marks
            self.fit()
            try:
                got = self._many(*args)
            except lua.LuaMemoryError:
                self._window = self._bound = None  # the candle table may not have been made
                out.extend(rt._out_of_memory(when) for rt in todo)
                continue
            except lua.LuaError as exc:  # a failure of the loop itself, not of a strategy's code
                self._window = self._bound = None
                out.extend(rt._error(str(exc)) for rt in todo)
                continue
            letters, details = (got[0], got[1:]) if isinstance(got, tuple) else (got, ())
            k = 0
            for rt, letter in zip(todo, letters, strict=True):
                if letter != "x":
                    out.append(Decision(LETTERS[letter], 1.0, None, rt._log[:] if rt._log else []))
                    continue
                m = details[k]
                values = details[k + 1 : k + 1 + m] if m > 0 else ()
                k += 1 + max(m, 0)
                try:
                    if m < 0:
                        raise rt._bad("decide returned text that is not valid UTF-8")
                    out.append(rt._step_decision(rt._outcome(values)))
                except StrategyError as exc:
                    out.append(exc)
        return out

    def collect_garbage(self) -> None:
        """A full collection of the state (the eval worker's child runs them when idle)."""
        if self.rt is not None:
            try:
                self._collect()
            except lua.LuaError:  # a __gc metamethod of a strategy's failed: its own next call will tell
                pass

    def memory_used(self) -> int:
        """Bytes the state holds (counted against its memory cap)."""
        return self.rt.get_memory_used() if self.rt is not None else 0

    def close(self) -> None:
        for runtime in list(self.slots.values()):
            runtime.rt = runtime.boot = runtime._decide = runtime._on_tick = runtime._series_state = None
        self.slots = {}
        self.rt = self.boot = None
        self._run = self._step = self._many = self._tick = self._make_candles = self._series = None
        self._collect = self._charge = self._unpack = None
        self._grants, self._windows, self._hot, self._bound, self._window = {}, {}, {}, None, None


class StrategyRuntime:
    """One strategy's Lua environment: compiles ``code``, runs its top level and ``init(params)`` (unless
    ``run_init`` is false); raises StrategyError. In a Lua state of its own, or in ``state`` (an assignment
    among the others of its strategy version: see LuaState). Not thread-safe; one evaluation at a time."""

    def __init__(
        self,
        code: str,
        *,
        name: str,
        params: dict[str, Any] | None = None,
        limits: Limits | None = None,
        indicators: ArrayStore | None = None,
        run_init: bool = True,
        state: LuaState | None = None,
    ) -> None:
        self.name = name
        self._owns = state is None
        self.state = state = state if state is not None else LuaState(limits, indicators)
        self.limits = state.limits
        self.store = state.store
        self._log: list[str] = []
        self._log_bytes = 0
        self._candle_time: int | None = None
        self._series_state: tuple[Any, Any, Any] | None = None
        self._decide: Any = None
        self._on_tick: Any = None
        self.rt: Any = state.rt
        self.boot: Any = state.boot
        self.slot = state.attach(self)
        try:
            self._start(code, params, run_init)
        except BaseException:
            self.close()
            raise

    def _start(self, code: str, params: dict[str, Any] | None, run_init: bool) -> None:
        name = self.name
        if not isinstance(code, str) or not code.strip():
            raise StrategyError(name, "the strategy is empty")
        env = self.boot["new_env"](self.slot)
        compiled = self.boot["compile"](code, env)  # a function, or (nil, message)
        if isinstance(compiled, tuple) or compiled is None:
            raise self._error(compiled[1] if compiled else "cannot compile", syntax=True)
        self._call(compiled)
        self.declared: dict[str, ParamSpec] = self._declared(env)
        self._decide, self._on_tick = env["decide"], env["on_tick"]
        # a strategy decides on candles (decide), keeps quotes on ticks (on_tick), or both
        if lua.lua_type(self._decide) != "function" and lua.lua_type(self._on_tick) != "function":
            raise StrategyError(name, f"{NO_DECIDE} (nor on_tick(t, c, params), for a strategy run on ticks)")
        for fn_name, fn in (("decide", self._decide), ("on_tick", self._on_tick)):
            if fn is not None and lua.lua_type(fn) != "function":
                raise StrategyError(name, f"{fn_name} must be a function")
        # the declared defaults where the run sets nothing: live, paper and backtests alike
        given = {n: spec.default for n, spec in self.declared.items() if spec.default is not None}
        given.update(params or {})
        self.params = self.rt.table_from(given)
        init = env["init"]
        if init is not None:
            if lua.lua_type(init) != "function":
                raise StrategyError(name, "init must be a function")
            if run_init:
                self._call(init, self.params)
        self.boot["prepare"](self.slot, self._decide, self.params, self._on_tick)

    @property
    def broken(self) -> bool:
        """Whether its Lua state went over its memory limit: not to be used again."""
        return self.state.broken

    def _declared(self, env: Any) -> dict[str, ParamSpec]:
        """The strategy's ``params`` declaration (``tradewind.sandbox.params``), read raw (no metamethod runs)
        and bounded, then checked; {} when it declares none."""
        decl = self.rt.globals().rawget(env, "params")
        if decl is None:
            return {}
        try:
            return parse_declaration(_plain(decl, 0))
        except DeclarationError as exc:
            raise StrategyError(self.name, str(exc)) from None

    @property
    def has_decide(self) -> bool:
        """Whether the strategy defines ``decide(c, params)``: it can be evaluated on candles."""
        return self._decide is not None

    @property
    def has_on_tick(self) -> bool:
        """Whether the strategy defines ``on_tick(t, c, params)``: it can be evaluated on ticks."""
        return self._on_tick is not None

    def _print(self, text: Any) -> None:
        if len(self._log) >= self.limits.log_lines or self._log_bytes >= self.limits.log_bytes:
            if not self._log or not self._log[-1].startswith("… "):
                self._log.append("… log truncated")
            return
        text = str(text)[: self.limits.log_bytes - self._log_bytes]
        self._log_bytes += len(text)
        self._log.append(text)

    # -- calling user code -----------------------------------------------------------------------------
    def _call(self, fn: Any, *args: Any) -> tuple[Any, ...]:
        try:
            result = self.state._run(fn, *args)
        except lua.LuaMemoryError:
            raise self._out_of_memory(self._candle_time) from None
        except lua.LuaError as exc:
            raise self._error(str(exc)) from None
        values: tuple[Any, ...] = result if isinstance(result, tuple) else (result,)
        if values[0] is not True:
            raise self._error(values[1] if len(values) > 1 else "unknown error")
        return values[1:]

    def _out_of_memory(self, candle_time: int | None) -> StrategyError:
        """The error of a strategy over its memory limit; its state is marked broken (not to be reused)."""
        self.state.broken = True
        return StrategyError(
            self.name, _limit_text("memory", self.limits), candle_time=candle_time, limit="memory"
        )

    def _error(self, err: Any, syntax: bool = False) -> StrategyError:
        text = err if isinstance(err, str) else _lua_text(err)
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        mark = self.state._mark if isinstance(self.state._mark, str) else ""
        if mark and mark in text:
            limit = text.split(mark, 1)[1].split()[0].strip() or "instructions"
            if limit != "instructions" and limit != "time":
                self.state.broken = True
            return StrategyError(
                self.name, _limit_text(limit, self.limits), candle_time=self._candle_time, limit=limit
            )
        if "not enough memory" in text:
            return self._out_of_memory(self._candle_time)
        line = None
        m = _LINE.match(text)
        if m:
            line = int(m.group(1))
            text = text[m.end() :]
        if len(text) > MAX_ERROR:
            text = text[:MAX_ERROR] + f"… ({len(text) - MAX_ERROR} more characters)"
        reason = f"syntax error: {text}" if syntax else text
        return StrategyError(self.name, reason, candle_time=self._candle_time, line=line)

    def decide(self, window: CandleWindow, candle_time: int | None = None) -> Decision:
        """Evaluate ``decide(c, params)`` on the window; raises StrategyError."""
        self._candle_time = candle_time if candle_time is not None else (window.last_time or None)
        if self._decide is None:
            raise self._missing(NO_DECIDE, 'it runs on ticks only: give the assignment the trigger "tick"')
        if self._log:
            self._log, self._log_bytes = [], 0
        state = self.state
        if len(state.slots) > 1:
            state.fit()
        return self._step_decision(self._invoke(state._step, (self.slot, *state.bind(window)), "decide"))

    def _step_decision(self, out: Sequence[Any]) -> Decision:
        """What decide's step returned, judged: a Decision, or a StrategyError raised."""
        if len(out) >= 9:  # decide returned a table: its fields, read raw in Lua (the ninth marks it)
            d = self._table_decision(*out[:8])
            if len(out) > 9:  # and a plot (sandbox.lua's plot_out)
                return d._replace(plot=self._plot(out[9:]))
            return d
        return self._decision(out[0] if out else None)

    def _plot(self, out: Sequence[Any]) -> dict[str, float] | None:
        """A plot as sandbox.lua's ``plot_out`` hands it over: the names joined by commas and the values, or
        False and why it is not one (the strategy's error). NaN values are left out: no point there."""
        names = out[0]
        if names is False or not isinstance(names, str):
            raise self._bad(
                out[1] if len(out) > 1 and isinstance(out[1], str) else "plot is not a table of series"
            )
        if not names:
            return None
        plot = {n: float(v) for n, v in zip(names.split(","), out[1:], strict=False) if v == v}
        return plot or None

    def _invoke(self, fn: Any, args: Sequence[Any], who: str) -> Sequence[Any]:
        """One live evaluation's call into Lua (``decide``'s step or ``on_tick``'s): what it returned, or
        its failure as a StrategyError. _call's work, inlined: this is the hot path of the worker."""
        try:
            got = fn(*args)
        except lua.LuaMemoryError:
            raise self._out_of_memory(self._candle_time) from None
        except lua.LuaError as exc:
            raise self._error(str(exc)) from None
        except UnicodeDecodeError:  # text from Lua that is not UTF-8 (a return value or an error message)
            raise self._bad(f"{who} returned text that is not valid UTF-8") from None
        return self._outcome(got)

    def _outcome(self, got: Sequence[Any]) -> Sequence[Any]:
        """An evaluation's values as sandbox.lua's ``finish`` hands them over (true and what it returned,
        or false and the error): what it returned, or the error raised."""
        if got[0] is not True:
            raise self._error(got[1] if len(got) > 1 else "unknown error")
        return got[1:]

    def on_tick(
        self, window: CandleWindow, tick: Tick, state: TickState | None = None, candle_time: int | None = None
    ) -> Decision:
        """Evaluate ``on_tick(t, c, params)``: ``t`` made from the tick and the assignment's state (its
        position, cash and resting quotes; none when ``state`` is None), ``c`` the window as ``decide``
        gets it. The Decision carries ``quotes`` (and no position) when on_tick returned quotes, neither
        when it returned nothing, a position as ``decide``'s otherwise. Raises StrategyError."""
        self._candle_time = candle_time if candle_time is not None else (window.last_time or None)
        if self._on_tick is None:
            raise self._missing(
                NO_ON_TICK, 'it cannot run on ticks: give the assignment the trigger "candle"'
            )
        if self._log:
            self._log, self._log_bytes = [], 0
        args: list[Any] = [tick.bid, tick.ask, tick.bid_size, tick.ask_size, tick.last, tick.time]
        if state is None:
            args += (0.0, 0.0, 0)
        else:
            args += (state.position, state.cash, len(state.quotes))
            for q in state.quotes:
                args += (q.side, q.price, q.amount)
        lua_state = self.state
        args += lua_state.bind(window)
        if len(lua_state.slots) > 1:
            lua_state.fit()
        out = self._invoke(lua_state._tick, (self.slot, *args), "on_tick")
        if len(out) == 7:  # {quotes = ...}: how many, then side, price, amount of each (see sandbox.lua)
            return self._quotes_decision(*out)
        if len(out) >= 9:
            d = self._table_decision(*out[:8], who="on_tick")
            return d._replace(plot=self._plot(out[9:])) if len(out) > 9 else d
        value = out[0] if out else None
        if value is None:
            return Decision(None, 1.0, None, self._log[:] if self._log else [])
        if value.__class__ is str and value in POSITIONS:
            return Decision(value, 1.0, None, self._log[:] if self._log else [])
        shown = repr(value[:40]) if value.__class__ is str else _short(value)
        raise self._bad(
            f'on_tick returned {shown}; return {{quotes = {{...}}}}, nothing (keep the quotes), or "long", '
            '"short" or "neutral"'
        )

    def _quotes_decision(self, n: Any, s1: Any, p1: Any, a1: Any, s2: Any, p2: Any, a2: Any) -> Decision:
        if n is False:  # not a list of at most two quotes of known fields: Lua says why
            raise self._bad(s1 if isinstance(s1, str) else "quotes must be a list of quotes")
        quotes: list[tuple[str, float, float]] = []
        for i, (side, price, amount) in enumerate(((s1, p1, a1), (s2, p2, a2))[:n], 1):
            if side is None:
                raise self._bad(f'quote {i} needs side = "buy" or "sell"')
            if side.__class__ is not str or side not in QUOTE_SIDES:
                shown = repr(side[:40]) if side.__class__ is str else _short(side)
                raise self._bad(f'quote {i}: side must be "buy" or "sell", got {shown}')
            if price is None:
                raise self._bad(f"quote {i} needs a price")
            if not _number(price) or not price > 0:
                raise self._bad(f"quote {i}: price must be a positive number, got {_short(price)}")
            if amount is None:
                raise self._bad(f"quote {i} needs an amount (of the base asset)")
            if not _number(amount) or not amount > 0:
                raise self._bad(
                    f"quote {i}: amount must be a positive number (of the base asset), got {_short(amount)}"
                )
            if quotes and quotes[0][0] == side:
                raise self._bad(f'two {side} quotes: at most one quote per side (one "buy", one "sell")')
            quotes.append((side, float(price), float(amount)))
        return Decision(None, 1.0, None, self._log[:] if self._log else [], quotes=quotes)

    def _missing(self, what: str, hint: str) -> StrategyError:
        return StrategyError(self.name, f"{what}: {hint}", candle_time=self._candle_time)

    def decide_series(
        self,
        arrays: dict[str, np.ndarray],
        lookback: int,
        start: int,
        stop: int,
        out: list[str] | None = None,
        extras: dict[int, Extras] | None = None,
        plots: Plots | None = None,
    ) -> str:
        """Positions for candles start..stop-1 (0-based) of a whole history, each decided on the window
        of at most ``lookback`` candles ending there: a backtest, with the loop inside Lua. One letter
        per candle: ``l`` long, ``s`` short, ``n`` neutral. Raises StrategyError at the failing candle;
        the letters decided before it are in ``out`` (appended as they come). Without the hook
        (``Limits.hooked`` False) raises ``Unverified`` where the runner could not prove the candles within
        the limits and at any error in Lua; a return value it hands over to be judged here comes after
        candles proved, so its error is the hooked run's.

        With ``extras``, each candle whose decision is a table with a size other than 1, an exit or a
        limit gets ``extras[i] = (size, stop_loss, take_profit, trailing_stop, limit, expire)`` (i the
        0-based index into the arrays; None where absent, size None meaning 1), filled up to the failing
        candle on an error. Values are checked as live's. With ``plots``, the plots of its candles from
        ``plots.start`` on are recorded there."""
        times = arrays["time"]
        if self._decide is None:
            raise StrategyError(self.name, f"{NO_DECIDE}: a backtest runs decide on every candle")
        state = self.state
        if self._series_state is None or self._series_state[0] is not arrays:
            w = self.store.bind_series(
                [arrays[k] for k in ("open", "high", "low", "close", "volume", "time")]
            )
            state._grants.update(w.grants)
            c, views = state._make_candles(*w.codes)
            self._series_state = (arrays, c, views)
        _, c, views = self._series_state
        state._window = state._bound = None  # the window's candle table is not the live one any more
        parts: list[str] = [] if out is None else out
        mark = len(parts)
        first = start + 1  # Lua counts candles from 1
        plot_from = None if plots is None else plots.start + 1
        while first <= stop:
            try:
                done, ok, names, recorded, got, letters, *rest = state._series(
                    self._decide, c, views, self.params, first, stop, lookback, extras is not None, plot_from
                )
            except lua.LuaMemoryError:
                if not self.state.limits.hooked:
                    raise Unverified("out of memory without the hook") from None
                raise self._out_of_memory(None) from None
            parts.append(letters)
            if got is not False and extras is not None:  # (got is False unless extras are asked for)
                self._read_extras(got, extras)
            if recorded is not False and plots is not None:
                plots.add_flat(names.split(","), self._read_flat(recorded, 3))
            if ok:
                break
            self._candle_time = int(times[done - 1])
            if rest[0] == "unsure":
                raise Unverified(f"candle {done}: not proved within the limits without the hook")
            if rest[0] == "error":
                raise self._error(rest[1])
            # a return value Lua did not accept at once: judged here, with live's messages
            if rest[9]:
                decision = self._table_decision(*rest[1:9])
                if len(rest) > 10:
                    decision = decision._replace(plot=self._plot(rest[10:]))
            else:
                decision = self._decision(rest[1])
            # decide's decisions always name a position (only on_tick's quotes leave it None)
            assert decision.position is not None
            parts.append(decision.position[0])
            if extras is not None:
                x = _extras_of(decision)
                if x is not None:
                    extras[done - 1] = x
            if plots is not None and decision.plot:
                plots.add(done - 1, decision.plot)
            first = done + 1
        return "".join(parts[mark:])

    def _read_flat(self, table: Any, width: int) -> list[Any]:
        """A flat Lua table of numbers the backtest runner recorded, ``width`` per record, read with
        table.unpack a slice at a time (Lua's stack is bounded)."""
        n = len(table)
        step = width * EXTRA_SLICE
        out: list[Any] = []
        for lo in range(1, n + 1, step):
            try:
                values = self.state._unpack(table, lo, min(n, lo + step - 1))
            except lua.LuaMemoryError:
                raise self._out_of_memory(None) from None
            out.extend(values if isinstance(values, tuple) else (values,))
        return out

    def _read_extras(self, table: Any, extras: dict[int, Extras]) -> None:
        """The extras the backtest runner recorded: seven numbers per candle (see sandbox.lua's ``series``)."""
        values = self._read_flat(table, EXTRA_FIELDS)
        for k in range(0, len(values), EXTRA_FIELDS):
            i, size, sl, tp, ts, limit, expire = values[k : k + EXTRA_FIELDS]
            extras[i - 1] = (
                None if size != size else float(size),
                None if sl != sl else float(sl),
                None if tp != tp else float(tp),
                None if ts != ts else float(ts),
                None if limit != limit else float(limit),
                None if expire != expire else int(expire),
            )

    def _decision(self, value: Any) -> Decision:
        if value.__class__ is Decision:
            return value
        logs = self._log[:] if self._log else []
        if value.__class__ is str:
            if value not in POSITIONS:
                raise self._bad(f'decide returned {value[:40]!r}; return "long", "short" or "neutral"')
            return Decision(value, 1.0, None, logs)
        if lua.lua_type(value) == "table":  # a backtest's decision, made a plain table in Lua
            return self._table_decision(*(value[k] for k in TABLE_FIELDS))
        if value is None:
            raise self._bad('decide returned nothing; return "long", "short" or "neutral"')
        raise self._bad(f'decide returned {_short(value)}; return "long", "short" or "neutral"')

    def _table_decision(
        self,
        position: Any,
        size: Any,
        note: Any,
        stop_loss: Any = None,
        take_profit: Any = None,
        trailing_stop: Any = None,
        limit: Any = None,
        expire: Any = None,
        *,
        who: str = "decide",
    ) -> Decision:
        if position.__class__ is not str or position not in POSITIONS:
            if who == "on_tick":
                raise self._bad(
                    'the table on_tick returned needs quotes = {...} or position = "long", "short" or '
                    '"neutral"'
                )
            raise self._bad('the table decide returned needs position = "long", "short" or "neutral"')
        if size is None:
            size = 1.0
        if not _number(size) or not 0 <= size <= 1:
            raise self._bad(f"size must be a number from 0 to 1, got {_short(size)}")
        if note is not None and not isinstance(note, (str, int, float)):
            raise self._bad("note must be text")
        if stop_loss is not None and (not _number(stop_loss) or not 0 < stop_loss < 1):
            raise self._bad(
                f"stop_loss must be a fraction between 0 and 1 (0.02 = 2 %), got {_short(stop_loss)}"
            )
        if take_profit is not None and (not _number(take_profit) or not 0 < take_profit <= 100):
            raise self._bad(
                f"take_profit must be a fraction above 0, at most 100 (0.05 = 5 %), got {_short(take_profit)}"
            )
        if trailing_stop is not None and (not _number(trailing_stop) or not 0 < trailing_stop < 1):
            raise self._bad(
                f"trailing_stop must be a fraction between 0 and 1 (0.03 = 3 %), got {_short(trailing_stop)}"
            )
        if limit is not None and (not _number(limit) or not limit > 0):
            raise self._bad(f"limit must be a positive price, got {_short(limit)}")
        if expire is not None:
            if not _number(expire) or expire != int(expire) or not 1 <= expire <= MAX_EXPIRE:
                raise self._bad(
                    f"expire must be a whole number of candles from 1 to {MAX_EXPIRE}, got {_short(expire)}"
                )
            if limit is None:
                raise self._bad("expire needs limit: it is how many candles a limit entry stays open")
            expire = int(expire)
        return Decision(
            position,
            float(size),
            None if note is None else str(note)[:500],
            self._log[:] if self._log else [],
            None if stop_loss is None else float(stop_loss),
            None if take_profit is None else float(take_profit),
            None if trailing_stop is None else float(trailing_stop),
            None if limit is None else float(limit),
            expire,
        )

    def _bad(self, reason: str) -> StrategyError:
        return StrategyError(self.name, f"bad return value: {reason}", candle_time=self._candle_time)

    def collect_garbage(self) -> None:
        """A full collection of this runtime's Lua state (the eval worker's child runs them when idle)."""
        self.state.collect_garbage()

    def memory_used(self) -> int:
        """Bytes this runtime's Lua state holds (counted against its memory cap)."""
        return self.state.memory_used()

    def close(self) -> None:
        """Forget it: its Lua state goes when it has one of its own, its slot in the shared one otherwise."""
        if self.rt is None:
            return
        if self._owns:
            self.state.close()
        else:
            self.state.detach(self.slot)
        self.rt = self.boot = self._decide = self._on_tick = self._series_state = None


def _number(x: Any) -> bool:
    """A finite number (not a boolean)."""
    return x.__class__ in (int, float) and math.isfinite(x)


def _extras_of(d: Decision) -> Extras | None:
    """A decision's backtest extras, or None when it has none (size 1, no exits, no limit)."""
    if (
        d.size == 1
        and d.stop_loss is None
        and d.take_profit is None
        and d.trailing_stop is None
        and d.limit is None
    ):
        return None
    return (None if d.size == 1 else d.size, d.stop_loss, d.take_profit, d.trailing_stop, d.limit, d.expire)


def _short(value: Any) -> str:
    t = lua.lua_type(value)
    if t:
        return f"a {t}"
    return repr(value)[:40]


DECLARATION_ENTRIES = 101  # more than any declaration may hold: enough to say it holds too many
DECLARATION_TEXT = 1000


def _plain(value: Any, depth: int) -> Any:
    """A Lua value of a ``params`` declaration as plain Python: tables as dicts (or lists when their keys are
    1..n), read with raw ``next`` (no metamethod runs), at most three levels deep and DECLARATION_ENTRIES
    entries per table; raises DeclarationError beyond that or for a value that is not data."""
    kind = lua.lua_type(value)
    if kind is None:
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        if isinstance(value, str) and len(value) > DECLARATION_TEXT:
            raise DeclarationError(
                f"params: a text of {len(value):,} characters; at most {DECLARATION_TEXT:,}"
            )
        return value
    if kind != "table":
        raise DeclarationError(f"params may hold tables, numbers, text and booleans, not a {kind}")
    if depth >= 3:
        raise DeclarationError("params nests tables too deep (params.name.choices is the deepest)")
    out: dict[Any, Any] = {}
    for k, v in value.items():
        if len(out) >= DECLARATION_ENTRIES:
            raise DeclarationError(f"params: a table of more than {DECLARATION_ENTRIES - 1} entries")
        key = _plain(k, depth + 1) if lua.lua_type(k) is None else None
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise DeclarationError("params: a table key must be a name or a position")
        out[key] = _plain(v, depth + 1)
    if out and all(isinstance(k, int) for k in out) and sorted(out) == list(range(1, len(out) + 1)):
        return [out[i] for i in range(1, len(out) + 1)]
    return out


def _lua_text(err: Any) -> str:
    kind = lua.lua_type(err)
    if kind is not None:  # never str() a Lua object here: its __tostring would run without the hook
        return f"an error value of type {kind}"
    try:
        return str(err)
    except Exception:
        return "error object"


def validate(code: str, limits: Limits | None = None) -> list[Diagnostic]:
    """Compile (and run the top level of) ``code`` in a throwaway sandbox: syntax errors with their line,
    neither ``decide`` nor ``on_tick`` defined (either makes a strategy), errors or limits hit by the top level; [] when it is fine. ``init`` is not run:
    it may need an assignment's parameters. What the limits cannot stop (work in one VM instruction) only
    a kill can: the web app runs this in the children of ``eval.validation.ValidationPool``, never in-process."""
    return inspect(code, limits)[0]


def inspect(code: str, limits: Limits | None = None) -> tuple[list[Diagnostic], dict[str, ParamSpec]]:
    """``validate``'s diagnostics and, when there are none, the parameters the code declares (``params``)."""
    try:
        limits = limits or Limits(time_ms=500, instructions=2_000_000)
        rt = StrategyRuntime(code, name="validate", limits=limits, run_init=False)
    except StrategyError as exc:
        return [Diagnostic(exc.line, exc.reason)], {}
    declared = rt.declared
    rt.close()
    return [], declared
