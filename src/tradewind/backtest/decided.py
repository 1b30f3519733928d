"""A backtest's decisions as the fill pass reads them, and the thread that decides them while it fills.

The strategy runs in Lua, which lupa runs without holding the GIL, so the fill pass (Python) can trade
the decisions of the first candles while the strategy decides the next ones: ``Decided.more`` takes the
next chunk of letters when the fill needs a decision it does not know yet. Chunks are small (the fill
then holds the GIL only briefly, and the strategy's thread waits little for it when it calls the host:
indicators, blocks of history). The decisions and the fills are the same as one after the other: only
the order in which the work is done changes.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import signal
import threading
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

import numpy as np

from tradewind.sandbox.runtime import Plots, StrategyError, StrategyRuntime, Unverified

LONG, SHORT, NEUTRAL = ord("l"), ord("s"), ord("n")
Extras = dict[
    int, tuple[Any, ...]
]  # candle index -> (size, stop_loss, take_profit, trailing_stop, limit, expire)
STREAM_CHUNK = 8192  # candles decided per call into Lua when deciding alongside the fill
STALL_S = 3.0  # a forked strategy without the hook that gives no sign of life for this long is killed


class Decided:
    """The decisions of candles 0..known-1 of a run of ``n`` candles: the letters (``codes``, neutral past
    ``known``), the extras (``extras``, ``has_extra``), and the candles whose decision can act, in order:
    ``longs``, ``shorts`` and ``marks`` (exits set). A decision on the last candle cannot act (no next
    candle), and decisions before ``first`` are not traded (they only warm the strategy up)."""

    def __init__(self, n: int, first: int = 0) -> None:
        self.n, self.first = n, first
        self.codes = np.full(n, NEUTRAL, dtype=np.uint8)
        self.has_extra = np.zeros(n, dtype=bool)
        self.extras: Extras = {}
        self.longs: list[int] = []
        self.shorts: list[int] = []
        self.marks: list[int] = []
        self.known = 0
        self.source: Callable[[], tuple[np.ndarray, Extras] | None] | None = None

    def add(self, letters: np.ndarray, extras: Extras) -> None:
        """The letters (uint8) of the next candles, from ``known`` on, and their extras."""
        start = self.known
        stop = min(self.n, start + len(letters))
        chunk = letters[: stop - start]
        if self.first > start:
            chunk = chunk.copy()
            chunk[: self.first - start] = NEUTRAL
        self.codes[start:stop] = chunk
        usable = chunk[: max(0, min(stop, self.n - 1) - start)]
        # Python lists and bisect: a scalar lookup costs a third of numpy's searchsorted on one value
        self.longs += (np.flatnonzero(usable == LONG) + start).tolist()
        self.shorts += (np.flatnonzero(usable == SHORT) + start).tolist()
        for i in sorted(extras):
            if not self.first <= i < stop:
                continue
            e = self.extras[i] = extras[i]
            self.has_extra[i] = True
            if i < self.n - 1 and any(v is not None for v in e[1:4]):
                self.marks.append(i)
        self.known = stop

    def more(self) -> bool:
        """Take the next chunk of decisions (waiting for it); False when none will come."""
        if self.source is None:
            return False
        got = self.source()
        if got is None:
            self.source = None
            return False
        self.add(*got)
        return True

    def next_of(self, arr: list[int], i: int, before: int | None = None) -> int:
        """The first candle of ``arr`` (longs, shorts or marks) at or after i; ``n`` when there is none. With
        ``before``, that one when there is none before it: no more decisions are waited for than those up to
        it (the fill then goes on while the strategy decides the rest)."""
        stop = self.n if before is None else before
        while True:
            k = bisect_left(arr, i)
            if k < len(arr) and arr[k] < stop:
                return arr[k]
            if self.known >= stop or not self.more():
                return stop


class Failed(Exception):
    """The strategy failed at a candle: the error, and the letters and extras decided before it in the
    chunk it failed in."""

    def __init__(self, error: StrategyError, letters: np.ndarray, extras: Extras) -> None:
        super().__init__(str(error))
        self.error, self.letters, self.extras = error, letters, extras


def _letters(parts: list[str]) -> np.ndarray:
    return np.frombuffer("".join(parts).encode(), dtype=np.uint8)


def _chunk(
    rt: StrategyRuntime, arrays: dict[str, np.ndarray], lookback: int, start: int, plots: Plots | None
) -> tuple[np.ndarray, Extras]:
    """The letters and extras of the ``STREAM_CHUNK`` candles from ``start``; ``Failed`` at a strategy error."""
    parts: list[str] = []
    extras: Extras = {}
    try:
        rt.decide_series(
            arrays, lookback, start, min(len(arrays["time"]), start + STREAM_CHUNK), parts, extras, plots
        )
    except StrategyError as exc:
        raise Failed(exc, _letters(parts), extras) from None
    return _letters(parts), extras


class _Decider:
    """What ``Stream`` and ``Forked`` share: the run they decide, and the chunks handed over so far (told to
    ``progress``). ``plots`` is filled as the strategy decides; read it once the context is left."""

    def __init__(
        self,
        rt: StrategyRuntime,
        arrays: dict[str, np.ndarray],
        lookback: int,
        progress: Callable[[int, int], None] | None = None,
        plots: Plots | None = None,
    ) -> None:
        self.rt, self.arrays, self.lookback, self.progress, self.plots = rt, arrays, lookback, progress, plots
        self.n = len(arrays["time"])
        self.done = 0

    def _handed(self, letters: np.ndarray, extras: Extras) -> tuple[np.ndarray, Extras]:
        self.done += len(letters)
        if self.progress is not None:
            self.progress(self.done, self.n)
        return letters, extras


class Stream(_Decider):
    """``rt.decide_series`` over the run in a thread of its own, chunk by chunk, handed to a ``Decided`` as
    it needs them (``take``, in the caller's thread, which also reports ``progress``). Use as a context
    manager: leaving it stops the thread after its current chunk and waits for it."""

    _chunks: queue.SimpleQueue[tuple[str, Any, Any]]
    _stop: threading.Event
    _thread: threading.Thread

    def __enter__(self) -> Stream:
        self._chunks = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="backtest-decide", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _produce(self) -> None:
        try:
            for start in range(0, self.n, STREAM_CHUNK):
                if self._stop.is_set():
                    return
                try:
                    letters, extras = _chunk(self.rt, self.arrays, self.lookback, start, self.plots)
                except Failed as failed:
                    self._chunks.put(("raise", failed, None))
                    return
                self._chunks.put(("ok", letters, extras))
            self._chunks.put(("end", None, None))
        except BaseException as exc:  # handed to the caller's thread, which raises it
            self._chunks.put(("raise", exc, None))

    def take(self) -> tuple[np.ndarray, Extras] | None:
        """The next chunk's letters and extras, None after the last; raises ``Failed`` at a strategy error
        and whatever else the strategy's thread raised."""
        kind, a, b = self._chunks.get()
        if kind == "ok":
            return self._handed(a, b)
        if kind == "end":
            return None
        raise a


class Forked(_Decider):
    """``rt.decide_series`` over the run without the count hook (``Limits.hooked`` False), in a forked child,
    chunk by chunk, handed to a ``Decided`` as the fill in this process needs them: ``Stream``'s interface.

    Why a child process and not a thread: the proof that lets the hook go (sandbox.lua's ``runner``) reads
    the process's CPU clock, which in a child is the strategy's alone while this process fills beside it;
    and a strategy stuck inside one candle, which nothing in Lua stops without the hook, is killed with its
    child. ``take`` raises ``Unverified`` when the child could not prove its candles within the limits, met
    any error (the hooked run tells it exactly), gave no sign of life for ``stall_s`` (the runner beats at
    most every 50 ms of its CPU time) or died: the caller then runs the strategy hooked. POSIX only."""

    stall_s: float  # STALL_S when entered
    pid: int  # the child's
    _fd: int  # the pipe's end the chunks come from
    _buf: bytes
    _poll: select.poll

    def __enter__(self) -> Forked:
        self.stall_s, self._buf = STALL_S, b""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - in the child, which never returns
            os.close(r)
            self._child(w)
        os.close(w)
        self.pid, self._fd = pid, r
        self._poll = select.poll()  # (not select.select: a process may hold more than 1,024 descriptors)
        self._poll.register(r, select.POLLIN)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)  # (done, or not wanted any more: no harm either way)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = 0
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _child(self, w: int) -> None:  # pragma: no cover - in the child
        def send(kind: bytes, body: bytes = b"") -> None:
            os.write(w, kind + len(body).to_bytes(4, "little") + body)

        status = 1
        try:
            _die_with_parent()
            # the Lua heap's pages are the parent's until written: a full collection writes them all now
            # (copy-on-write faults are CPU time the proof would otherwise count against a batch)
            self.rt.state._collect()
            self.rt.state.on_beat = lambda: send(b"b")
            for start in range(0, self.n, STREAM_CHUNK):
                try:
                    letters, extras = _chunk(self.rt, self.arrays, self.lookback, start, self.plots)
                except (Unverified, Failed):
                    send(b"u")
                    return
                send(b"c", pickle.dumps((letters.tobytes(), extras), pickle.HIGHEST_PROTOCOL))
            send(
                b"e", pickle.dumps(None if self.plots is None else self.plots.values, pickle.HIGHEST_PROTOCOL)
            )
            status = 0
        finally:
            os._exit(status)  # nothing of the parent's (buffers, atexit, the caller's frames) runs here

    def _read(self, size: int) -> bytes:
        while len(self._buf) < size:
            if not self._poll.poll(self.stall_s * 1000):
                raise Unverified(f"no sign of life for {self.stall_s:g} s without the hook")
            got = os.read(self._fd, 1 << 20)
            if not got:
                raise Unverified("the strategy's process ended without its decisions")
            self._buf += got
        out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def take(self) -> tuple[np.ndarray, Extras] | None:
        """The next chunk's letters and extras, None after the last; raises ``Unverified`` (see the class)."""
        while True:
            head = self._read(5)
            kind, body = head[:1], self._read(int.from_bytes(head[1:], "little"))
            if kind == b"c":
                letters, extras = pickle.loads(body)
                return self._handed(np.frombuffer(letters, dtype=np.uint8), extras)
            if kind == b"e":
                if self.plots is not None:
                    self.plots.values = pickle.loads(body)
                return None
            if kind == b"u":
                raise Unverified("not proved within the limits without the hook")
            # b"b": a beat


def _die_with_parent() -> None:  # pragma: no cover - in the child
    """Linux: the child is killed when its parent dies (a stuck strategy must not outlive a killed worker);
    ends it at once if the parent is gone already."""
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pipe's end still stops it at its next chunk
        pass
    if os.getppid() != parent:
        os._exit(1)
