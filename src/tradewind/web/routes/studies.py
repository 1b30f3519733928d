"""Optimisation studies: start one on the backtest workers, follow its trials, resume it, read the best."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictBool, field_validator

from tradewind.backtest import optimize as opt
from tradewind.backtest.studies import stale
from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.storage.models import Study
from tradewind.web import declared
from tradewind.web.declared import ValidatorDep
from tradewind.web.deps import Cursor, Limit, ObjectId, OwnedDep, StateDep, found, page
from tradewind.web.errors import ApiError
from tradewind.web.routes import submit
from tradewind.web.routes.submit import Queued, RunHead, SearchIn
from tradewind.web.schemas import Page
from tradewind.web.schemas import Request as Body

router = APIRouter(prefix="/api/studies", tags=["studies"])
Objective = Literal["sharpe", "sortino", "return", "max_drawdown", "profit_factor"]
MAX_STUDY_TRIALS = 2000


def _sharpe() -> list[Objective]:
    return ["sharpe"]


class StudyIn(SearchIn):
    objectives: list[Objective] = Field(
        default_factory=_sharpe,
        min_length=1,
        max_length=5,
        description="one: the best trial; several: a Pareto front (NSGA-II)",
    )
    sampler: Literal["tpe", "nsga2"] | None = Field(
        default=None, description="default: tpe for one objective, nsga2 for several"
    )
    trials: int = Field(default=50, ge=1, le=MAX_STUDY_TRIALS, strict=True)
    prune: StrictBool = Field(
        default=True, description="median pruning on a quarter and a half of the candles (one objective only)"
    )

    @field_validator("objectives")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("an objective is given twice")
        return value


class ResumeIn(Body):
    trials: int | None = Field(
        default=None,
        ge=1,
        le=MAX_STUDY_TRIALS,
        strict=True,
        description="the trials it should have in all; default: as before",
    )


class StudyQueued(Queued):
    pass


class TrialOut(BaseModel):
    number: int
    state: str  # running | complete | pruned | fail | waiting
    params: dict[str, Any]
    values: list[float] | None
    metrics: dict[str, Any]
    worker: str | None
    attempts: int
    duration_s: float | None
    error: str | None
    requeued: bool = Field(description="interrupted by a restart and run again (as a later trial)")
    same_as: int | None = Field(
        default=None,
        description="the earlier trial with the same parameters whose results this one took instead of running",
    )
    intermediate: list[list[float]] = Field(description="[candles run, objective] at each pruning checkpoint")


class StudyOut(RunHead):  # status: queued | running | interrupted | done | error
    objectives: list[str]
    directions: list[str]
    sampler: str
    trials: int
    config: dict[str, Any]
    space: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    trial_results: list[TrialOut] | None = Field(default=None, description="every trial (the detail only)")
    best: list[int] | None = Field(default=None, description="the best trial, or the Pareto front's trials")
    importances: dict[str, dict[str, float]] | None = Field(
        default=None, description="per objective: parameter -> importance (PED-ANOVA), summing to 1"
    )
    best_run: dict[str, Any] | None = Field(
        default=None,
        description="the detail only, once the study has ended: its best trial run again in full "
        "(trial, params, values, metrics, trades, equity [[time ms, equity, drawdown %]], range, error)",
    )


class StudyPage(Page):
    items: list[StudyOut]


def _status(s: Study) -> str:
    return "interrupted" if stale(s) else s.status


def out(s: Study) -> StudyOut:
    config = opt.StudyConfig.of((s.config or {}).get("study") or {})
    return StudyOut(
        id=s.id,
        status=_status(s),
        strategy_id=s.strategy_id,
        version=s.version,
        market_id=s.market_id,
        timeframe=s.timeframe,
        objectives=list(config.objectives),
        directions=list(config.directions),
        sampler=config.sampler,
        trials=s.trials,
        config=s.config or {},
        space=s.space,
        summary=s.summary,
        error=s.error,
        created_at=s.created_at,
        finished_at=s.finished_at,
    )


class _Reader:
    """Optuna's storage, opened once per app (it creates its tables on first use), and the importances of a
    study by its number of completed trials (not computed again on every poll)."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._storage: Any = None
        self._lock = threading.Lock()
        self._importances: dict[tuple[str, int], dict[str, dict[str, float]]] = {}

    def storage(self) -> Any:
        with self._lock:
            if self._storage is None:
                self._storage = opt.open_storage(self.db_url)
            return self._storage

    def detail(
        self, name: str, objectives: tuple[str, ...]
    ) -> tuple[list[dict[str, Any]], list[int], dict[str, Any]]:
        import optuna

        try:
            study = optuna.load_study(study_name=name, storage=self.storage())
        except KeyError:  # not created yet (queued, or it failed before)
            return [], [], {}
        rows = opt.trial_rows(study)
        complete = sum(1 for r in rows if r["state"] == "complete")
        key = (name, complete)
        if key not in self._importances:
            self._importances[key] = opt.importances(study, objectives)
            if len(self._importances) > 256:
                self._importances.pop(next(iter(self._importances)))
        return rows, opt.best_numbers(study), self._importances[key]


def _reader(request: Request) -> _Reader:
    reader = getattr(request.app.state, "studies", None)
    if reader is None:
        reader = request.app.state.studies = _Reader(request.app.state.tw.settings.db_url)
    return reader


async def _start(repo: OwnedDep, st: StateDep, study: Study) -> None:
    await submit.start(repo, st, study, subjects.STUDY_START, m.StartStudy(study_id=study.id), "study")


@router.post("", status_code=202, response_model=StudyQueued)
async def create(body: StudyIn, repo: OwnedDep, st: StateDep, pool: ValidatorDep) -> StudyQueued:
    """Start an optimisation of the strategy's latest version over the market's stored candles in [from, to): the
    strategy's declared parameters (its top-level ``params = {...}``) are searched; poll GET /api/studies/{id}."""
    strategy = await submit.strategy_of(repo, body)
    start, end = body.span()
    latest = await repo.version(strategy, strategy.latest_version)
    assert latest is not None
    fixed = declared.check(await declared.of_version(pool, latest, repo.user_id), body.params)
    objectives = tuple(body.objectives)
    config = body.study(objectives, body.sampler or opt.default_sampler(objectives), fixed)
    study = repo.add(
        Study(
            **submit.columns(strategy, body),
            config={"from": start, "to": end, "study": config.as_dict()},
            trials=body.trials,
            optuna_name=f"web-{uuid.uuid4().hex}",
        )
    )
    await repo.s.commit()
    await _start(repo, st, study)
    return StudyQueued(id=study.id, status=study.status)


@router.get("", response_model=StudyPage)
async def list_studies(repo: OwnedDep, limit: Limit = 50, before_id: Cursor = None) -> dict[str, Any]:
    """The user's studies, newest first, with their counts and best trial so far (no trial list)."""
    return page([out(s).model_dump(mode="json") for s in await repo.page(Study, limit, before_id)], limit)


@router.get("/{study_id}", response_model=StudyOut)
async def get(study_id: ObjectId, repo: OwnedDep, request: Request) -> StudyOut:
    """A study with every trial, the best trial (or the Pareto front) and the parameters' importances."""
    s = found(await repo.get(Study, study_id), "study")
    result = out(s)
    try:
        rows, best, imp = await asyncio.to_thread(
            _reader(request).detail, s.optuna_name, tuple(result.objectives)
        )
    except opt.OptimizeError as exc:
        raise ApiError(503, str(exc)) from None
    result.trial_results = [TrialOut(**r) for r in rows]
    result.best, result.importances, result.best_run = best, imp, s.result
    return result


@router.post("/{study_id}/resume", status_code=202, response_model=StudyQueued)
async def resume(
    study_id: ObjectId, repo: OwnedDep, st: StateDep, body: ResumeIn | None = None
) -> StudyQueued:
    """Go on with a study (interrupted, finished, or failed) until it has ``trials`` trials; a study whose
    driver is alive is a 409."""
    s = found(await repo.get(Study, study_id), "study")
    if s.status == "queued" or (s.status == "running" and not stale(s)):
        raise ApiError(409, "the study is running; resume it once it has stopped")
    if body is not None and body.trials is not None:
        s.trials = body.trials
    s.status, s.error, s.finished_at, s.heartbeat_at = "queued", None, None, None
    await repo.s.commit()
    await _start(repo, st, s)
    return StudyQueued(id=s.id, status=s.status)
