"""Optimisation with Optuna: trials asked of a study, run on the backtest workers over NATS, told back.

- **Storage**: Optuna's ``RDBStorage`` in the platform's database, apart from the platform's own tables
  (``storage_url``): on PostgreSQL in the schema ``optuna`` of the same database, on SQLite in the file
  ``<database>.optuna`` beside it. Optuna's tables (``studies``, ``trials``, ... and its own Alembic
  ``alembic_version``) would otherwise meet the platform's: both keep their schema version in
  ``alembic_version``, and each would take the other's revision for its own.
- **Trials** run where sweep points run (``backtest.run``, queue group ``backtest-workers``), at most
  ``parallel`` at a time. A job asks its worker for heartbeats; a worker silent for ``worker_timeout_s``
  (killed, cut off) or whose child process died has the job sent again, up to ``attempts`` times.
- **Pruning** (one objective only, as Optuna's): a trial runs in stages over growing prefixes of the
  candles (a quarter, a half, all); after each the metrics of that prefix are reported, and the median
  pruner stops a trial doing worse than the median of the earlier trials at the same stage. A prefix's
  equity is exactly the full run's up to there (decisions look back only), so the reported values are
  those of the run itself. The stages run in one pass of the strategy on one worker
  (``engine.run_staged``): a trial that goes to the end costs about one run, one pruned at the first
  stage a quarter. The worker is sent the pruner's cut at each stage as it stands (``floors``) and stops
  there when the trial falls below it; the driver then tells Optuna stage by stage and Optuna decides — if
  the cut moved meanwhile and Optuna says go on, the stages left are asked for again.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

import numpy as np

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.sandbox.params import ParamSpec

if TYPE_CHECKING:
    import optuna

# objective -> (the summary's metric, direction)
Direction = Literal["minimize", "maximize"]
OBJECTIVES: dict[str, tuple[str, Direction]] = {
    "sharpe": ("sharpe", "maximize"),
    "sortino": ("sortino", "maximize"),
    "return": ("return_pct", "maximize"),
    "max_drawdown": ("max_drawdown_pct", "minimize"),
    "profit_factor": ("profit_factor", "maximize"),
}
SAMPLERS = ("tpe", "nsga2")
METRICS = (
    "final_equity",
    "return_pct",
    "max_drawdown_pct",
    "sharpe",
    "sortino",
    "profit_factor",
    "win_rate",
    "trade_count",
    "candles",
)
STAGES = (0.25, 0.5, 1.0)
PRUNER_STARTUP = 4  # complete trials before the median pruner cuts
MAX_TRIALS = 10_000
OPTUNA_SCHEMA = "optuna"


class OptimizeError(ValueError):
    """An optimisation that cannot start or go on; the message says why."""


# -- configuration --------------------------------------------------------------------------------------------
class RunSettings(TypedDict):
    """The keyword arguments of a study's runs (``engine.run``'s, ``RunBacktest``'s) that its config sets."""

    cash: float
    fee: float
    maker_fee: float | None
    slippage: float
    lookback: int


@dataclass(frozen=True)
class StudyConfig:
    """What a study optimises and how: kept with the study (the Optuna study's user attribute ``config`` and
    the platform's ``studies.settings``), so a resumed study goes on as it started."""

    objectives: tuple[str, ...] = ("sharpe",)
    sampler: str = "tpe"  # tpe | nsga2 (the default with several objectives)
    prune: bool = True  # median pruning on the stages (one objective only)
    seed: int | None = None
    fixed: dict[str, Any] = field(
        default_factory=dict
    )  # parameters not searched (over the declared defaults)
    cash: float = 10_000.0
    fee: float = 0.001
    maker_fee: float | None = None
    slippage: float = 0.0
    lookback: int = 500

    def __post_init__(self) -> None:
        if not self.objectives:
            raise OptimizeError("give at least one objective")
        unknown = [o for o in self.objectives if o not in OBJECTIVES]
        if unknown:
            raise OptimizeError(f"unknown objective {unknown[0]!r}; use {', '.join(OBJECTIVES)}")
        if len(set(self.objectives)) != len(self.objectives):
            raise OptimizeError("an objective is given twice")
        if self.sampler not in SAMPLERS:
            raise OptimizeError(f"unknown sampler {self.sampler!r}; use {' or '.join(SAMPLERS)}")

    @property
    def directions(self) -> list[Direction]:
        return [OBJECTIVES[o][1] for o in self.objectives]

    @property
    def pruning(self) -> bool:
        return self.prune and len(self.objectives) == 1

    def run_settings(self) -> RunSettings:
        """What every run of the study is given besides its code, candles and parameters."""
        return RunSettings(
            cash=self.cash,
            fee=self.fee,
            maker_fee=self.maker_fee,
            slippage=self.slippage,
            lookback=self.lookback,
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["objectives"] = list(self.objectives)
        return out

    @classmethod
    def of(cls, raw: dict[str, Any]) -> StudyConfig:
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        known["objectives"] = tuple(known.get("objectives") or ("sharpe",))
        return cls(**known)


def parse_objectives(text: str) -> tuple[str, ...]:
    """``sharpe`` or ``sharpe,max_drawdown``."""
    return tuple(o.strip() for o in text.split(",") if o.strip())


def default_sampler(objectives: tuple[str, ...]) -> str:
    return "nsga2" if len(objectives) > 1 else "tpe"


# -- storage --------------------------------------------------------------------------------------------------
def storage_url(db_url: str) -> tuple[str, dict[str, Any]]:
    """Optuna's (synchronous) URL and engine arguments for the platform's database URL (see the module)."""
    from sqlalchemy import make_url

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = url.database
        if not path or path == ":memory:" or path.startswith("file:"):
            raise OptimizeError("an optimisation needs a database file (not an in-memory SQLite)")
        optuna_path = Path(path).with_name(Path(path).name + ".optuna")
        return f"sqlite:///{optuna_path}", {"connect_args": {"timeout": 30}}
    if url.get_backend_name() == "postgresql":
        sync = url.set(drivername="postgresql+psycopg")
        return (
            sync.render_as_string(hide_password=False),
            {"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}, "pool_pre_ping": True},
        )
    raise OptimizeError(f"Optuna's storage needs SQLite or PostgreSQL, not {url.get_backend_name()}")


def open_storage(db_url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage in the platform's database (creating its tables, and on PostgreSQL its schema)."""
    import optuna
    from sqlalchemy import create_engine, text

    url, kwargs = storage_url(db_url)
    if url.startswith("postgresql"):
        engine = create_engine(url)
        try:
            with engine.begin() as c:
                c.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
        finally:
            engine.dispose()
    else:
        # the platform's database holds secrets: Optuna's file beside it is the owner's only as well
        import os

        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from sqlalchemy.exc import SQLAlchemyError

    # Two processes (or the web app and the worker of one) opening a new storage at once both create its
    # tables: the loser's CREATE fails, and once the winner is done it finds them there.
    for attempt in range(5):
        try:
            with _opening:
                storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            if url.startswith("sqlite"):
                _wal(storage.engine)
            return storage
        except SQLAlchemyError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


_opening = threading.Lock()  # one storage opened at a time in a process (see open_storage)


def _wal(engine: Any) -> None:
    """Optuna's SQLite file as the platform's database is kept: write-ahead log, ``synchronous=NORMAL``
    (a commit appends to the log without waiting for the disk; a crash may lose the last trials' writes,
    never the file). A trial writes a dozen times (ask, suggestions, reports, attributes, tell), each
    commit an fsync otherwise, with a lane of workers waiting on it."""
    from sqlalchemy import event

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # the connections opened before the listener are closed: every new one has it


def make_sampler(config: StudyConfig) -> optuna.samplers.BaseSampler:
    import optuna

    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed, multivariate=True, n_startup_trials=8)


def open_study(storage: Any, name: str, config: StudyConfig, *, resume: bool) -> optuna.Study:
    """A new study ``name`` (``resume`` False: one of that name must not exist) or the existing one (``resume``
    True: it must exist, with the same objectives)."""
    import optuna

    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP, n_warmup_steps=0)
        if config.pruning
        else None
    )
    if resume:
        try:
            study = optuna.load_study(
                study_name=name, storage=storage, sampler=make_sampler(config), pruner=pruner
            )
        except KeyError:
            raise OptimizeError(f"no study named {name!r} to resume") from None
        before = study.user_attrs.get("config", {}).get("objectives")
        if before is not None and tuple(before) != config.objectives:
            raise OptimizeError(
                f"study {name!r} optimises {','.join(before)}; resume it with the same --objective"
            )
        return study
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            directions=config.directions,
            sampler=make_sampler(config),
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise OptimizeError(f"a study named {name!r} exists; give --resume to go on with it") from None
    study.set_user_attr("config", config.as_dict())
    return study


# -- the search space -------------------------------------------------------------------------------------------
def searched(space: dict[str, ParamSpec], fixed: dict[str, Any]) -> dict[str, ParamSpec]:
    """The declared parameters an optimiser varies: those with a range, choices or two truth values, not fixed."""
    return {n: s for n, s in space.items() if s.searchable and n not in fixed}


def base_params(space: dict[str, ParamSpec], fixed: dict[str, Any]) -> dict[str, Any]:
    """The parameters every trial gets: the declared defaults (a range of one value: that value), then ``fixed``."""
    out: dict[str, Any] = {}
    for n, s in space.items():
        if s.default is not None:
            out[n] = s.default
        elif s.min is not None and s.min == s.max:
            out[n] = s.min
    return {**out, **fixed}


def suggest(trial: optuna.Trial, spec: ParamSpec) -> Any:
    if spec.type == "bool":
        return trial.suggest_categorical(spec.name, [False, True])
    if spec.type == "choice":
        return trial.suggest_categorical(spec.name, list(spec.choices))
    lo, hi = spec.min, spec.max
    assert lo is not None and hi is not None  # a searched number has a range (ParamSpec.searchable)
    if spec.type == "int":
        return trial.suggest_int(spec.name, int(lo), int(hi), step=int(spec.step or 1))
    return trial.suggest_float(spec.name, float(lo), float(hi), step=spec.step, log=spec.log)


def goes_on(values: list[float], floor: float | None, maximize: bool) -> bool:
    """Whether a trial goes on after a stage, by the median pruner's rule: the best of its values so far is
    not worse than ``floor``, the median of the finished trials' values at that stage (no floor, or no
    number yet: go on, and let Optuna decide)."""
    seen = [v for v in values if not math.isnan(v)]
    if floor is None or not seen:
        return True
    return max(seen) >= floor if maximize else min(seen) <= floor


def goes_on_after(summaries: list[dict[str, Any]], key: str, maximize: bool, cut: list[float | None]) -> bool:
    """``goes_on`` after the last of a trial's stage ``summaries``: the objective ``key`` of each so far,
    against the cut at that stage (``cut``: ``floors``, one per stage but the last)."""
    i = len(summaries) - 1
    values = [float(s[key]) for s in summaries if s.get(key) is not None]
    return goes_on(values, cut[i] if i < len(cut) else None, maximize)


def floors(study: optuna.Study, stages: list[int], startup: int = PRUNER_STARTUP) -> list[float | None]:
    """The median pruner's cut at each stage but the last, from the finished trials as they stand (Optuna's
    ``MedianPruner``: no cut before ``startup`` trials are complete; the median of their values at the
    stage)."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < startup:
        return []
    out: list[float | None] = []
    for step in stages[:-1]:
        seen = [t.intermediate_values[step] for t in done if step in t.intermediate_values]
        seen = [v for v in seen if not math.isnan(v)]
        out.append(float(np.percentile(seen, 50)) if seen else None)  # as Optuna's percentile pruner
    return out


def checkpoints(n: int, pruning: bool) -> list[int]:
    """The candle counts a trial is run to, in order: all of them, or growing prefixes when pruning."""
    if not pruning:
        return [n]
    return sorted({max(1, math.ceil(n * f)) for f in STAGES})


# -- running trials on the workers ------------------------------------------------------------------------------
def _set_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    for k, v in attrs.items():
        trial.set_user_attr(k, v)


def _key(params: dict[str, Any]) -> str:
    """Parameters as a key: equal for equal values (1 and 1.0 alike, as Lua sees them)."""
    import json

    return json.dumps(
        {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in params.items()},
        sort_keys=True,
        default=str,
    )


class TrialFailed(Exception):
    """The strategy failed on a trial's parameters (its error, which a re-run would repeat)."""


class WorkersLost(Exception):
    """No worker finished the job in ``attempts`` tries."""


def declared_space(code: str, name: str) -> dict[str, ParamSpec]:
    """The parameters the strategy declares (``params = {...}``), read by running its top level (not
    ``init``); raises the sandbox's StrategyError when it does not load."""
    from tradewind.sandbox.runtime import StrategyRuntime

    rt = StrategyRuntime(code, name=name, run_init=False)
    try:
        return rt.declared
    finally:
        rt.close()


@dataclass
class Job:
    """The backtest every trial runs, but for its parameters and how many candles."""

    code: str
    data: m.BacktestData
    name: str
    config: StudyConfig


class Runner(Protocol):
    """Runs a trial's stages: ``BusRunner`` on the workers, ``walkforward.LocalRunner`` in this process."""

    async def run(
        self,
        params: dict[str, Any],
        stages: list[int],
        cut: list[float | None],
        on_worker: Callable[[str], None] | None = None,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The summaries of the runs of ``params`` over the first ``stages[0]``, ``stages[1]``, ... candles,
        up to the first stage whose objective falls below its ``cut`` (``goes_on``), and the workers that
        held the job (the last one ran it); raises TrialFailed when the strategy failed."""
        ...


class BusRunner:
    """Runs a trial's stage as a RunBacktest on ``backtest.run`` with heartbeats; a worker that stops beating
    for ``worker_timeout_s`` (or whose child died) has the job sent again, at most ``attempts`` times."""

    def __init__(
        self,
        nc: Any,
        job: Job,
        *,
        worker_timeout_s: float = 30.0,
        attempts: int = 3,
        heartbeat_s: float | None = None,
    ) -> None:
        self.nc, self.job = nc, job
        self.worker_timeout_s = worker_timeout_s
        self.attempts = attempts
        self.heartbeat_s = heartbeat_s or max(0.2, worker_timeout_s / 4)

    async def run(
        self,
        params: dict[str, Any],
        stages: list[int],
        cut: list[float | None],
        on_worker: Callable[[str], None] | None = None,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """The summaries of the stages run and the workers that held the job (the last one ran it)."""
        objective = self.job.config.objectives[0]
        held: list[str] = []
        reasons: list[str] = []
        for _ in range(self.attempts):
            job = m.RunBacktest(
                job_id=uuid.uuid4().hex[:12],
                code=self.job.code,
                data=self.job.data,
                name=self.job.name,
                params=params,
                stages=stages,
                key=OBJECTIVES[objective][0],
                maximize=OBJECTIVES[objective][1] == "maximize",
                floors=cut,
                heartbeat_s=self.heartbeat_s,
                **self.job.config.run_settings(),
            )
            inbox = self.nc.new_inbox()
            sub = await self.nc.subscribe(inbox)
            worker = None
            try:
                await self.nc.publish(subjects.BACKTEST_RUN, m.encode(job), reply=inbox)
                while True:
                    try:
                        msg = await sub.next_msg(timeout=self.worker_timeout_s)
                    except TimeoutError:
                        why = f"worker {worker} stopped answering" if worker else "no worker took the job"
                        reasons.append(why)
                        break
                    reply = m.decode(msg.data, m.BacktestResult)
                    if worker != reply.worker:
                        worker = reply.worker
                        held.append(worker)
                        if on_worker is not None:
                            on_worker(worker)
                    if reply.running:
                        continue
                    if reply.retry:
                        reasons.append(f"{reply.worker}: {reply.error}")
                        break
                    if reply.error and not reply.summary:
                        raise TrialFailed(reply.error)
                    if reply.summary.get("error"):
                        raise TrialFailed(str(reply.summary["error"]))
                    return reply.stages or [reply.summary], held
            finally:
                await sub.unsubscribe()
        raise WorkersLost(
            f"the trial was sent {self.attempts} times and never finished: {'; '.join(reasons)}"
        )


# -- the loop ---------------------------------------------------------------------------------------------------
@dataclass
class Progress:
    """What the loop reports as trials end."""

    finished: int
    total: int
    best: str | None = None


def counted(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial that counts toward a study's total: finished, and not one interrupted and queued again."""
    return trial.state.is_finished() and not trial.user_attrs.get("requeued")


class Optimizer:
    """Drives one study: asks Optuna for parameters, runs them with ``runner``, tells the values back.

    Optuna is called from one thread of its own (its storage is synchronous): the event loop never waits on
    the database."""

    def __init__(
        self,
        study: optuna.Study,
        space: dict[str, ParamSpec],
        config: StudyConfig,
        runner: Runner,
        n_candles: int,
        *,
        progress: Callable[[Progress], None] | None = None,
        on_event: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self.study, self.runner, self.config = study, runner, config
        self.space = searched(space, config.fixed)
        if not self.space:
            raise OptimizeError(
                "the strategy declares no parameter to search: give params = {name = {min = ..., "
                "max = ...}} (or choices) at its top level, not all of them fixed"
            )
        self.base = base_params(space, config.fixed)
        self.stages = checkpoints(n_candles, config.pruning)
        self.progress = progress
        self.on_event = on_event
        self.failures: list[str] = []
        self.completed = 0  # trials this driver completed (pruned ones too), and before it (see run)
        # A backtest is deterministic: a trial whose parameters equal those of a trial this driver ran (on
        # the same candles) takes that trial's stage summaries instead of running. By parameters (``_key``):
        # the first trial's number and its summaries by stage; and the trials running now, to wait for.
        self._known: dict[str, tuple[int, dict[int, dict[str, Any]], list[str]]] = {}
        self._running: dict[str, asyncio.Event] = {}
        self.reused = 0  # trials of this driver that took another's results
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="optuna")

    async def _optuna(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, lambda: fn(*args, **kwargs))

    def _requeue_interrupted(self) -> int:
        """Trials left running by a driver that died (a restart): failed, marked, and their parameters queued
        again so they are run first."""
        import optuna

        n = 0
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            self.study._storage.set_trial_user_attr(t._trial_id, "requeued", True)
            self.study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            self.study.enqueue_trial(t.params, skip_if_exists=False)
            n += 1
        return n

    def _finished(self) -> int:
        return sum(1 for t in self.study.get_trials(deepcopy=False) if counted(t))

    def best_text(self) -> str | None:
        import optuna

        done = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not done:
            return None
        if len(self.config.objectives) > 1:
            return f"{len(self.study.best_trials)} on the Pareto front"
        best = self.study.best_trial
        return f"{self.config.objectives[0]} {best.value:.4g} (trial {best.number})"

    async def run(self, total: int, parallel: int) -> int:
        """Run trials until the study has ``total`` counted trials; the number this call ran."""
        try:
            await self._optuna(self._requeue_interrupted)
            finished = await self._optuna(self._finished)
            self.completed = await self._optuna(
                lambda: sum(
                    1 for t in self.study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")
                )
            )
            remaining = max(0, total - finished)
            started = 0
            ran = 0
            lock = asyncio.Lock()

            async def lane() -> None:
                nonlocal started, ran, finished
                while True:
                    async with lock:
                        if started >= remaining or self._hopeless():
                            return
                        started += 1
                    await self._trial()
                    ran += 1
                    finished += 1
                    if self.progress is not None:
                        self.progress(Progress(finished, total, await self._optuna(self.best_text)))

            await asyncio.gather(*(lane() for _ in range(max(1, min(parallel, remaining or 1)))))
            if self._hopeless():
                raise OptimizeError(f"the strategy failed on every trial: {self.failures[0]}")
            return ran
        finally:
            self._thread.shutdown(wait=False)

    def _hopeless(self) -> bool:
        """Stop when the first trials all fail (a broken strategy would fail every one)."""
        return len(self.failures) >= 3 and self.completed == 0

    async def _trial(self) -> None:
        import optuna

        trial = await self._optuna(self.study.ask)
        params = dict(self.base)
        for spec in self.space.values():
            params[spec.name] = await self._optuna(suggest, trial, spec)
        workers: list[str] = []
        metrics: dict[str, Any] = {}
        started = time.perf_counter()

        def held(worker: str) -> None:
            if self.on_event is not None:
                self.on_event("running", trial.number, worker)

        key = _key(params)
        while key in self._running:  # the same parameters are running in another lane: wait for them
            await self._running[key].wait()
        same_as: int | None = None
        try:
            todo = list(self.stages)
            while todo:
                number, known, ran_on = self._known.get(key, (trial.number, {}, []))
                summaries = []
                for step in todo:
                    if step not in known:
                        break
                    summaries.append(known[step])
                if summaries:
                    if not workers:  # (one that ran a stage itself is its own)
                        same_as, workers = number, list(ran_on)
                else:
                    self._running[key] = asyncio.Event()
                    same_as = None  # it runs stages itself
                    try:
                        cut = await self._optuna(floors, self.study, todo) if len(todo) > 1 else []
                        summaries, by = await self.runner.run(params, todo, cut, held)
                        workers.extend(by)
                        if not summaries:
                            raise TrialFailed("the worker answered with no result")
                        self._known[key] = (
                            number,
                            {**known, **dict(zip(todo, summaries, strict=False))},
                            ran_on + by,
                        )
                    finally:
                        self._running.pop(key).set()
                for step, summary in zip(todo, summaries, strict=False):
                    metrics = {k: summary.get(k) for k in METRICS if k in summary}
                    values = [float(summary[OBJECTIVES[o][0]]) for o in self.config.objectives]
                    if step == self.stages[-1]:
                        await self._record(trial, params, metrics, workers, started, step, same_as)
                        await self._optuna(self.study.tell, trial, values)
                        self.completed += 1
                        self._event("complete", trial.number, workers)
                        return
                    await self._optuna(trial.report, values[0], step)
                    if await self._optuna(trial.should_prune):
                        await self._record(trial, params, metrics, workers, started, step, same_as)
                        await self._optuna(self.study.tell, trial, state=optuna.trial.TrialState.PRUNED)
                        self.completed += 1
                        self._event("pruned", trial.number, workers)
                        return
                # the worker stopped at a cut that has moved since (Optuna says go on): the stages left
                todo = todo[len(summaries) :]
        except (TrialFailed, WorkersLost) as exc:
            if isinstance(exc, TrialFailed):
                self.failures.append(str(exc))
            await self._optuna(trial.set_user_attr, "error", str(exc)[:1000])
            await self._record(trial, params, metrics, workers, started, None)
            await self._optuna(self.study.tell, trial, state=optuna.trial.TrialState.FAIL)
            self._event("fail", trial.number, workers)
        except BaseException:
            # cancelled (the driver stops): the trial stays RUNNING and is queued again on resume
            raise

    def _event(self, kind: str, number: int, workers: list[str]) -> None:
        if self.on_event is not None:
            self.on_event(kind, number, workers[-1] if workers else "")

    async def _record(
        self,
        trial: optuna.Trial,
        params: dict[str, Any],
        metrics: dict[str, Any],
        workers: list[str],
        started: float,
        candles: int | None,
        same_as: int | None = None,
    ) -> None:
        if same_as is not None:
            self.reused += 1
        attrs: dict[str, Any] = {
            "params": params,
            "metrics": metrics,
            "workers": workers,
            "attempts": 0 if same_as is not None else len(workers),
            "duration_s": round(time.perf_counter() - started, 3),
            "candles_run": candles,
        }
        if same_as is not None:  # trial same_as's results (the same parameters; its workers): not run again
            attrs["same_as"] = same_as
        await self._optuna(_set_attrs, trial, attrs)  # one hop to Optuna's thread for them all


# -- reading a study ---------------------------------------------------------------------------------------------
def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial: number, state, params (all the run got), values, metrics, worker, attempts, duration, error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        u = t.user_attrs
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "params": u.get("params") or dict(t.params),
                "values": list(t.values) if t.values is not None else None,
                "metrics": u.get("metrics") or {},
                "worker": (u.get("workers") or [None])[-1],
                "attempts": u.get("attempts", 0),
                "duration_s": u.get("duration_s"),
                "error": u.get("error"),
                "requeued": bool(u.get("requeued")),
                "same_as": u.get("same_as"),
                "intermediate": [[int(k), float(v)] for k, v in sorted(t.intermediate_values.items())],
            }
        )
    return rows


def best_numbers(study: optuna.Study) -> list[int]:
    """The best trial's number, or with several objectives those on the Pareto front; [] before any completes."""
    import optuna

    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return []
    if len(study.directions) > 1:
        return sorted(t.number for t in study.best_trials)
    return [study.best_trial.number]


def _objective_value(i: int) -> Callable[[optuna.trial.FrozenTrial], float]:
    """A completed trial's value of objective ``i`` (importances are reckoned one objective at a time)."""

    def value(trial: optuna.trial.FrozenTrial) -> float:
        values: list[float] | None = trial.values  # a property() in Optuna: mypy sees Any
        assert values is not None  # only completed trials are asked, and those have their values
        return values[i]

    return value


def importances(study: optuna.Study, objectives: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Parameter importances per objective, by Optuna's PED-ANOVA (how differently each parameter is spread in
    the best 10 % of the trials than in all of them; fANOVA would need scikit-learn); {} with fewer than two
    completed trials or nothing that varied."""
    import optuna

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < 2:
        return {}
    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(objectives):
        try:
            found = optuna.importance.get_param_importances(
                study,
                evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                target=_objective_value(i) if len(objectives) > 1 else None,
            )
        except (RuntimeError, ValueError):  # e.g. every trial had the same parameters
            continue
        out[name] = {k: round(float(v), 6) for k, v in found.items()}
    return out
