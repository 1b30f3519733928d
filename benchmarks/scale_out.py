"""Scale-out, measured (issue 17): tick -> order latency as the load and the eval workers grow together.

Each eval worker is a process of its own (``tradewind run eval``) in a CPU cgroup of its own, its
executor child with it (a child inherits its parent's cgroup), every one limited to the same CPU share
(``--share``, cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, or v2 ``cpu.max``): the replicas of a
Kubernetes Deployment with a CPU limit. The bench process (``tradewind.bench.latency``) runs NATS (its
own nats-server), core and the sim exchange, unlimited, against a fresh PostgreSQL database per run (or
a SQLite file with ``--postgres ''``). Scenarios (``--loads``, default 100, 1,000, 3,000 and 10,000):

- ``flat``: each load with ``ceil(assignments / --per-worker)`` workers (default 1 per 1,000);
- ``few``: the largest load with ``--few`` workers (too few: chunks queue behind each other);
- ``kill``: the largest load with its workers, one of which (process and executor child: a pod) is
  SIGKILLed while it evaluates a candle in the middle of the measured candles; core sends its chunk
  again once ``eval_timeout_s`` has passed.

Every assignment orders on every candle: a candle every second up to ``--rate`` (1,000) assignments,
then less often, so that at most ``--rate`` evaluations a second are due on average (every 10 s at
10,000). Besides tick -> order p50/p99 it reports core's eval round trip and queue wait (its
histograms), the chunks each worker answered, retries, CPU throttling, memory per worker, evaluations
per worker CPU-second and the bench process's CPU per candle. Prints a table, writes a plot and
(``--json``) the figures; ``--replot`` redraws them from a JSON file. Needs root for the cgroups
(``--share 0`` runs the workers unlimited); removes what it made, including its database.

    sudo .venv/bin/python benchmarks/scale_out.py --json scale-out.json        # ~15 minutes
    sudo .venv/bin/python benchmarks/scale_out.py --loads 10000 --only flat --batch-size 250
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tradewind.bench import latency as lat
from tradewind.bus import subjects
from tradewind.bus.connection import connect
from tradewind.config import Settings
from tradewind.metrics import EVAL_BATCHES, EVAL_QUEUE_WAIT, EVAL_RETRIES, NATS_ROUND_TRIP

CG_PREFIX = "tw-scaleout-"
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------- cgroups


class CpuGroup:
    """One CPU cgroup with a quota of ``share`` CPUs (v1 cpu controller, or v2 cpu.max)."""

    def __init__(self, name: str, share: float, period_us: int = 100_000) -> None:
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        self.path = Path("/sys/fs/cgroup" if v2 else "/sys/fs/cgroup/cpu") / name
        self.path.mkdir()
        quota = max(1000, round(share * period_us))
        if v2:
            (self.path / "cpu.max").write_text(f"{quota} {period_us}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(period_us))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        self._procs = str(self.path / "cgroup.procs")

    def enter(self) -> None:
        """Put the calling process in the group (a child's ``preexec_fn``: what it starts stays in it)."""
        with open(self._procs, "w") as f:  # noqa: PTH123 - no pathlib between fork and exec
            f.write(str(os.getpid()))

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def rss_mb(self) -> float:
        """Resident memory of the group's processes (the worker and its executor child), MB."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        return round(total * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)

    def throttled_s(self) -> float:
        """CPU time the quota held back so far, in seconds."""
        try:
            stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
        except OSError:
            return 0.0
        if "throttled_time" in stat:  # v1, ns
            return int(stat["throttled_time"]) / 1e9
        return int(stat.get("throttled_usec", 0)) / 1e6

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)  # its last process is still exiting
        print(f"could not remove {self.path} (processes {self.pids()})", file=sys.stderr)


def remove_stale_groups() -> None:
    """Groups an earlier run of this script left (it was killed): empty ones whose owner is gone."""
    for root in (Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")):
        for d in root.glob(f"{CG_PREFIX}*"):
            owner = d.name.removeprefix(CG_PREFIX).split("-")[0]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                with contextlib.suppress(OSError):
                    d.rmdir()


# ----------------------------------------------------------------------------------- the workers, outside


def _tree(pid: int) -> list[int]:
    """The process and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return out


def _cpu_ns(pids: list[int]) -> int:
    """CPU time the processes have run, in ns (schedstat: finer than /proc/PID/stat's ticks)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return total


def _histogram(h: Any) -> dict[float, float]:
    """Cumulative bucket counts by upper bound."""
    out: dict[float, float] = {}
    for metric in h.collect():
        for s in metric.samples:
            if s.name.endswith("_bucket"):
                out[float(s.labels["le"])] = s.value
    return out


def _bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the bucket holding the q-quantile of what was observed in between."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if not total:
        return float("nan")
    for b, c in zip(bounds, counts, strict=True):
        if c >= q * total:
            return b
    return math.inf


def _counter_by_label(c: Any, label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for m in c.collect() for s in m.samples if s.name.endswith("_total")}


def _counter(c: Any) -> float:
    return sum(s.value for m in c.collect() for s in m.samples if s.name.endswith("_total"))


@dataclass
class Snapshot:
    round_trip: dict[float, float]
    queue_wait: dict[float, float]
    batches: dict[str, float]
    retries: float
    throttled_s: float
    at: float
    rss_mb: list[float]  # per worker (with its executor child)
    worker_cpu_ns: dict[int, int]  # CPU time of each live worker (by pid) and its children so far
    bench_cpu_s: float  # this process's: core, the sim exchange, the nats client, the bench itself

    @classmethod
    def take(cls, groups: list[CpuGroup], procs: list[Any]) -> Snapshot:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            _histogram(NATS_ROUND_TRIP),
            _histogram(EVAL_QUEUE_WAIT),
            _counter_by_label(EVAL_BATCHES, "worker"),
            _counter(EVAL_RETRIES),
            sum(g.throttled_s() for g in groups),
            time.monotonic(),
            [g.rss_mb() for g in groups],
            {p.pid: _cpu_ns(_tree(p.pid)) for p in procs if p.returncode is None},
            usage.ru_utime + usage.ru_stime,
        )


class Workers:
    """``tradewind run eval`` processes, each in a CPU cgroup of its own (``lat.Outside``)."""

    def __init__(
        self,
        count: int,
        share: float,
        log_dir: Path,
        kill_after_s: float | None = None,
        period_us: int = 100_000,
    ) -> None:
        self.count = count
        self.share = share
        self.period_us = period_us
        self.log_dir = log_dir
        self.kill_after_s = kill_after_s
        self.procs: list[asyncio.subprocess.Process] = []
        self.groups: list[CpuGroup] = []
        self.before: Snapshot | None = None
        self.after: Snapshot | None = None
        self.killed_at: float | None = None  # seconds into the measured candles
        self.nats_url = ""
        self.retry_grace_s = 15.0
        self._kill_task: asyncio.Task[None] | None = None

    async def start(self, nats_url: str, settings: Settings) -> None:
        self.nats_url = nats_url
        self.retry_grace_s = settings.eval_timeout_s + 5
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
        env.update(
            TRADEWIND_NATS_URL=nats_url,
            TRADEWIND_DATABASE_URL=settings.db_url,
            TRADEWIND_MODE="distributed",
            TRADEWIND_METRICS_PORT="0",
            TRADEWIND_LOG_LEVEL="INFO",
        )
        exe = str(Path(sys.executable).with_name("tradewind"))
        logs = []
        for i in range(self.count):
            group = (
                CpuGroup(f"{CG_PREFIX}{os.getpid()}-{i}", self.share, self.period_us) if self.share else None
            )
            if group:
                self.groups.append(group)
            log_path = self.log_dir / f"eval-{i}.log"
            logs.append(log_path)
            with log_path.open("w") as log:
                self.procs.append(
                    await asyncio.create_subprocess_exec(
                        exe,
                        "run",
                        "eval",
                        env={**env, "TRADEWIND_DATA_DIR": str(self.log_dir / f"eval-{i}")},
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        preexec_fn=group.enter if group else None,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 60 + 5 * self.count
        for proc, log_path in zip(self.procs, logs, strict=True):
            while "eval is running" not in log_path.read_text(errors="replace"):
                if proc.returncode is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"eval worker {proc.pid} did not start: {tail}")
                await asyncio.sleep(0.2)

    async def measuring(self, assignments: int) -> None:
        self.before = Snapshot.take(self.groups, self.procs)
        if self.kill_after_s is not None:
            self._kill_task = asyncio.create_task(self._kill_one(self.kill_after_s))

    async def _kill_one(self, after_s: float) -> None:
        """After ``after_s``, at the next candle: the first worker seen evaluating it (3 ms of CPU since the
        candle), with its executor child (a pod killed mid-chunk; one killed while idle costs nothing)."""
        await asyncio.sleep(after_s)
        nc = await connect(self.nats_url, "scale-out-kill")
        arrived = asyncio.Event()

        async def on_candle(msg: Any) -> None:
            arrived.set()

        await nc.subscribe(subjects.CORE_CANDLES_ALL, cb=on_candle)
        try:
            while True:
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), 120)
                trees = [_tree(p.pid) for p in self.procs]
                cpu0 = [_cpu_ns(t) for t in trees]
                deadline = time.monotonic() + 2.0
                busy = -1
                while busy < 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.002)
                    used = [_cpu_ns(t) - c for t, c in zip(trees, cpu0, strict=True)]
                    busy = next((i for i, u in enumerate(used) if u > 3_000_000), -1)
                if busy >= 0:
                    break
        finally:
            await nc.close()
        for pid in trees[busy]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert self.before is not None
        self.killed_at = round(time.monotonic() - self.before.at, 1)
        print(
            f"  killed eval worker {self.procs[busy].pid} (pids {trees[busy]}) mid-chunk at {self.killed_at} s",
            file=sys.stderr,
        )

    async def measured(self, assignments: int) -> None:
        if self.killed_at is not None:  # the candles held up behind the retried chunk get their orders out
            await asyncio.sleep(self.retry_grace_s)
        self.after = Snapshot.take(self.groups, self.procs)

    async def stop(self) -> None:
        if self._kill_task is not None:
            self._kill_task.cancel()
            await asyncio.gather(self._kill_task, return_exceptions=True)
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for group in self.groups:
            for pid in group.pids():  # an executor child left behind by its killed worker
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            group.remove()
        self.groups.clear()


# --------------------------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    name: str
    assignments: int
    workers: int
    interval: float
    candles: int
    warmup: int
    kill_at: float | None = None  # share of the measured candles after which one worker is killed


@dataclass
class Outcome:
    scenario: str
    assignments: int
    workers: int
    share: float
    interval_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    orders: int
    evaluations: int
    expected_evaluations: int
    evaluations_per_s: float
    round_trip_p50_ms: float  # eval request -> reply, bucket upper bounds (core's histogram)
    round_trip_p99_ms: float
    queue_wait_p99_ms: float
    batches_per_worker: list[int]
    retries: int
    throttled_s: float
    load_before: str
    load_after: str
    worker_rss_mb: list[float]  # each worker with its executor child, at the end of the measured candles
    killed_at_s: float | None = None
    per_candle: list[tuple[int, float, float]] = field(default_factory=list)
    runs: int = 1
    worker_cpu_s: float = 0.0  # CPU the eval workers used over the measured candles (not a killed one's)
    evaluations_per_cpu_s: float = 0.0  # their evaluations per CPU second: a replica's capacity per CPU
    core_cpu_s_per_candle: float = 0.0  # CPU of the bench process (core, the sim exchange) per candle


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def _fresh_database(server: str, name: str, drop_only: bool = False) -> str:
    import asyncpg  # type: ignore[import-untyped]

    parts = urlsplit(server.replace("postgresql+asyncpg", "postgresql"))
    admin = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


async def run_scenario(sc: Scenario, share: float, postgres: str, keep_logs: Path | None) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="tradewind-scaleout-") as tmp:
        log_dir = keep_logs or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        db_name = f"tw_scaleout_{os.getpid()}"
        db_url = (
            await _fresh_database(postgres, db_name)
            if postgres
            else f"sqlite+aiosqlite:///{Path(tmp) / 'tradewind.db'}"
        )
        kill_after = sc.kill_at * sc.candles * sc.interval if sc.kill_at is not None else None
        workers = Workers(sc.workers, share, log_dir, kill_after_s=kill_after)
        load_before = _loadavg()
        try:
            (r,) = await lat.run_latency(
                [sc.assignments],
                workers=0,
                candles=sc.candles,
                warmup=sc.warmup,
                speed=60.0 / sc.interval,
                data_dir=Path(tmp) / "bench",
                progress=lambda text: print(f"  {sc.name}: {text}", file=sys.stderr, flush=True),
                window=1 if sc.kill_at is not None else 0,
                database_url=db_url,
                outside=workers,
            )
        finally:
            if postgres:
                await _fresh_database(postgres, db_name, drop_only=True)
    b, a = workers.before, workers.after
    assert b is not None and a is not None
    # workers alive at both ends only: a killed one's CPU is gone with it (so this overstates a little)
    cpu_s = (
        sum(a.worker_cpu_ns[pid] - ns for pid, ns in b.worker_cpu_ns.items() if pid in a.worker_cpu_ns) / 1e9
    )
    batches = sorted(int(a.batches.get(k, 0) - b.batches.get(k, 0)) for k in set(a.batches) | set(b.batches))
    return Outcome(
        scenario=sc.name,
        assignments=sc.assignments,
        workers=sc.workers,
        share=share,
        interval_s=sc.interval,
        p50_ms=r.p50_ms,
        p99_ms=r.p99_ms,
        max_ms=r.max_ms,
        orders=r.orders,
        evaluations=r.evaluations,
        expected_evaluations=r.expected_evaluations,
        evaluations_per_s=r.evaluations_per_s,
        round_trip_p50_ms=_bucket_quantile(b.round_trip, a.round_trip, 0.5),
        round_trip_p99_ms=_bucket_quantile(b.round_trip, a.round_trip, 0.99),
        queue_wait_p99_ms=_bucket_quantile(b.queue_wait, a.queue_wait, 0.99),
        batches_per_worker=[n for n in batches if n],
        retries=int(a.retries - b.retries),
        throttled_s=round(a.throttled_s - b.throttled_s, 1),
        load_before=load_before,
        load_after=_loadavg(),
        worker_rss_mb=a.rss_mb,
        worker_cpu_s=round(cpu_s, 2),
        evaluations_per_cpu_s=round(r.evaluations / cpu_s) if cpu_s > 0 else 0.0,
        core_cpu_s_per_candle=round((a.bench_cpu_s - b.bench_cpu_s) / max(1, sc.candles), 3),
        killed_at_s=workers.killed_at,
        per_candle=r.windows,
    )


def _median_of(runs: list[Outcome]) -> Outcome:
    """The run with the median p99 (its other figures with it), p50 the median of the runs'."""
    ordered = sorted(runs, key=lambda o: o.p99_ms)
    mid = ordered[len(ordered) // 2]
    mid.p50_ms = round(statistics.median(o.p50_ms for o in runs), 2)
    mid.runs = len(runs)
    return mid


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    out: list[Scenario] = []
    only = set(args.only.split(","))
    loads = [int(x) for x in args.loads.split(",")]
    for n in loads:
        # at most --rate evaluations a second on average: a candle every second up to that, then less often
        interval = max(1.0, n / args.rate)
        slow = interval > 1.0
        candles = args.slow_candles if slow else args.candles
        warmup = args.slow_warmup if slow else args.warmup
        workers = max(1, math.ceil(n / args.per_worker))
        if "flat" in only:
            out.append(Scenario("flat", n, workers, interval, candles, warmup))
        if n == max(loads) and "few" in only:
            out.append(Scenario("few", n, args.few, interval, candles, warmup))
        if n == max(loads) and "kill" in only:
            out.append(Scenario("kill", n, workers, interval, candles, warmup, kill_at=0.5))
    return out


# ------------------------------------------------------------------------------------------ report, plot


def table(outcomes: list[Outcome]) -> str:
    head = (
        f"{'scenario':<8} {'assign.':>7} {'workers':>7} {'every s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'evals/expected':>15} {'rt p50':>7} {'rt p99':>7} {'qwait99':>7} {'chunks/worker':>14} {'retries':>7} "
        f"{'thrott s':>8} {'MB/worker':>9} {'evals/cpu-s':>11} {'core cpu-s/candle':>17} {'load':>15}"
    )
    lines = [head]
    for o in outcomes:
        per = f"{min(o.batches_per_worker, default=0)}-{max(o.batches_per_worker, default=0)}"
        lines.append(
            f"{o.scenario:<8} {o.assignments:>7} {o.workers:>7} {o.interval_s:>7g} {o.p50_ms:>8} {o.p99_ms:>8} "
            f"{o.max_ms:>8} {f'{o.evaluations}/{o.expected_evaluations}':>15} {o.round_trip_p50_ms:>7g} "
            f"{o.round_trip_p99_ms:>7g} {o.queue_wait_p99_ms:>7g} {per:>14} {o.retries:>7} {o.throttled_s:>8} "
            f"{max(o.worker_rss_mb, default=0):>9g} {o.evaluations_per_cpu_s:>11} {o.core_cpu_s_per_candle:>17} "
            f"{o.load_before + '→' + o.load_after.split()[0]:>15}"
        )
    for o in outcomes:
        if o.killed_at_s is not None:
            lines.append(
                f"kill, {o.assignments} assignments: worker killed {o.killed_at_s} s into the measured candles; "
                "per candle (n, p50 ms, p99 ms): "
                + ", ".join(f"{c}: {p50:g}/{p99:g}" for c, p50, p99 in o.per_candle)
            )
    return "\n".join(lines)


def plot(outcomes: list[Outcome], path: Path, share: float, per_worker: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    kills = [o for o in outcomes if o.scenario == "kill"]
    fig, axes = plt.subplots(1, 2 if kills else 1, figsize=(12 if kills else 7, 4.4), dpi=110, squeeze=False)
    ax = axes[0][0]
    flat = sorted((o for o in outcomes if o.scenario == "flat"), key=lambda o: o.assignments)
    if flat:
        xs = [o.assignments for o in flat]
        ax.plot(xs, [o.p50_ms for o in flat], "o-", label="p50, workers grown with the load")
        rt = [(o.assignments, o.round_trip_p99_ms) for o in flat if math.isfinite(o.round_trip_p99_ms)]
        ax.plot(xs, [o.p99_ms for o in flat], "s-", label="p99, workers grown with the load")
        if rt:
            ax.plot(*zip(*rt, strict=True), "d:", label="eval round trip p99 (bucket bound)", alpha=0.7)
        for o in flat:
            ax.annotate(
                f"{o.workers} w", (o.assignments, o.p99_ms), textcoords="offset points", xytext=(4, 6)
            )
    for o in (o for o in outcomes if o.scenario == "few"):
        ax.plot([o.assignments], [o.p50_ms], "v", color="tab:red", label=f"p50, only {o.workers} workers")
        ax.plot([o.assignments], [o.p99_ms], "^", color="tab:red", label=f"p99, only {o.workers} workers")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("active assignments (each orders on every candle)")
    ax.set_ylabel("tick → order call (ms)")
    ax.set_title(f"eval workers of {share:g} CPU each, 1 per {per_worker} assignments")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if kills:
        ax2 = axes[0][1]
        for o in kills:
            cs = [c for c, _, _ in o.per_candle]
            ax2.plot(cs, [p99 for _, _, p99 in o.per_candle], "s-", label=f"p99, {o.assignments} assignments")
            ax2.plot(cs, [p50 for _, p50, _ in o.per_candle], "o-", label=f"p50, {o.assignments} assignments")
            if o.killed_at_s is not None:
                # measured candle n arrives n intervals after the measurement starts
                killed = o.killed_at_s / o.interval_s
                ax2.axvline(killed, color="tab:red", ls="--", label="one worker SIGKILLed mid-chunk")
        ax2.set_yscale("log")
        ax2.yaxis.set_major_formatter(ScalarFormatter())
        ax2.set_xlabel("measured candle")
        ax2.set_ylabel("tick → order call (ms)")
        ax2.set_title(f"one of {kills[0].workers} workers killed under load")
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


# ------------------------------------------------------------------------------------------------- main


def run_all(args: argparse.Namespace) -> list[Outcome]:
    """Each run in an event loop of its own: a task the platform leaves behind stays behind."""
    outcomes: list[Outcome] = []
    for sc in scenarios(args):
        runs = []
        for i in range(args.repeat):
            print(
                f"{sc.name}: {sc.assignments} assignments, {sc.workers} workers of {args.share:g} CPU, "
                f"a candle every {sc.interval:g} s (run {i + 1}/{args.repeat}, load {_loadavg()})",
                file=sys.stderr,
                flush=True,
            )
            keep = args.logs / f"{sc.name}-{sc.assignments}-{i}" if args.logs else None
            runs.append(lat.run(run_scenario(sc, args.share, args.postgres, keep)))
            o = runs[-1]
            print(
                f"  p50 {o.p50_ms} ms, p99 {o.p99_ms} ms, evaluations {o.evaluations}/{o.expected_evaluations}",
                file=sys.stderr,
                flush=True,
            )
        outcomes.append(_median_of(runs))
    return outcomes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--share", type=float, default=0.2, help="CPUs per eval worker (cgroup quota); 0: none")
    ap.add_argument("--per-worker", type=int, default=1000, help="assignments per eval worker (flat, kill)")
    ap.add_argument("--few", type=int, default=2, help="workers in the too-few scenario (largest load)")
    ap.add_argument("--loads", default="100,1000,3000,10000")
    ap.add_argument("--only", default="flat,few,kill", help="scenarios: flat, few, kill")
    ap.add_argument(
        "--rate", type=float, default=1000.0, help="evaluations a second at most: sets the candle interval"
    )
    ap.add_argument("--candles", type=int, default=30, help="candles measured at one a second")
    ap.add_argument("--warmup", type=int, default=20, help="candles of warm-up at one a second")
    ap.add_argument("--slow-candles", type=int, default=10, help="candles measured when less often")
    ap.add_argument("--slow-warmup", type=int, default=4)
    ap.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="core's largest evaluation request (TRADEWIND_EVAL_BATCH_SIZE; 0: the setting's default)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs per scenario (the median is reported)")
    ap.add_argument(
        "--postgres",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432",
        help="a PostgreSQL server where a database is created and dropped per run; '': a SQLite file",
    )
    ap.add_argument("--plot", type=Path, default=HERE / "scale-out.png")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--logs", type=Path, help="keep the workers' logs under this folder")
    ap.add_argument("--replot", type=Path, help="no run: the table and the plot of a --json file")
    args = ap.parse_args()
    for key in ("TRADEWIND_NATS_URL", "TRADEWIND_DATABASE_URL"):  # the bench's own server and database
        os.environ.pop(key, None)
    if args.batch_size:  # read by the bench's settings, so by its core
        os.environ["TRADEWIND_EVAL_BATCH_SIZE"] = str(args.batch_size)
    if args.share:
        remove_stale_groups()
        most = max(math.ceil(n / args.per_worker) for n in (int(x) for x in args.loads.split(",")))
        if most * args.share > (os.cpu_count() or 1):
            print(f"warning: {most} workers x {args.share} CPU exceed the machine's cores", file=sys.stderr)
    if args.replot:
        outcomes = [Outcome(**o) for o in json.loads(args.replot.read_text())]
        for o in outcomes:
            o.per_candle = [tuple(c) for c in o.per_candle]  # type: ignore[misc]
    else:
        outcomes = run_all(args)
    print(table(outcomes))
    if args.plot:
        plot(outcomes, args.plot, outcomes[0].share if outcomes else args.share, args.per_worker)
        print(f"plot: {args.plot}")
    if args.json and not args.replot:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))


if __name__ == "__main__":
    main()
