"""Run history: every backtest, optimisation (study) and walk-forward of the user in one list, one document
shape for each (strategy version, market, data range, settings, headline metrics, equity, trades), compared
side by side, and exported as CSV (trades), JSON (everything) and a self-contained HTML report.

A run is named by its kind and id: ``backtest:12``, ``study:3``, ``walkforward:7``. Another user's run is
not found (404), as everywhere.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select

from tradewind.backtest import optimize as opt
from tradewind.backtest import report
from tradewind.storage.models import Backtest, Market, Strategy, StrategyVersion, Study, WalkForwardRun
from tradewind.storage.repositories import Owned
from tradewind.web.deps import OwnedDep, QueryId
from tradewind.web.errors import ApiError
from tradewind.web.routes import backtests as bt
from tradewind.web.routes import studies as st
from tradewind.web.routes import walkforwards as wfr
from tradewind.web.schemas import MAX_ID

router = APIRouter(prefix="/api/runs", tags=["runs"])
Kind = Literal["backtest", "study", "walkforward"]
MODELS: dict[Kind, Any] = {"backtest": Backtest, "study": Study, "walkforward": WalkForwardRun}
RANK: dict[Kind, int] = {
    "backtest": 0,
    "study": 1,
    "walkforward": 2,
}  # the order of runs created in the same microsecond
REF = re.compile(r"(backtest|study|walkforward):([1-9]\d{0,11})")
MAX_COMPARE = 10
KindPath = Annotated[Kind, Path(description="backtest, study or walkforward")]
RunId = Annotated[int, Path(ge=1, le=MAX_ID, description="the run's id (of its kind)")]
WF_DETAIL = (
    "mode",
    "objective",
    "cash",
    "windows",
    "is_equity",
    "oos_return_pct",
    "oos_annualised_pct",
    "is_annualised_pct",
    "wfe",
)


class RunRange(BaseModel):
    from_: int | None = Field(
        alias="from", description="the start asked for (epoch ms); null: the first candle"
    )
    to: int | None = Field(description="the end asked for (exclusive, epoch ms); null: open-ended")
    first: int | None = Field(description="the time of the first candle the run saw (null until it has run)")
    last: int | None = Field(description="the time of the last one")
    candles: int | None = Field(description="how many candles (or ticks) it ran over")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class RunOut(BaseModel):
    ref: str = Field(description="kind:id, e.g. backtest:12")
    kind: Kind
    id: int
    status: str = Field(description="queued | running | interrupted | done | error")
    strategy_id: int
    strategy: str = Field(description="the strategy's name")
    version: int = Field(description="the strategy version it ran (versions never change)")
    draft: bool = Field(
        default=False,
        description="a backtest of unsaved code (the editor's): kept with the "
        "run, the version is the one it was written over",
    )
    code_sha256: str | None = Field(default=None, description="SHA-256 of that version's code (one run only)")
    market_id: int
    exchange: str
    symbol: str
    timeframe: str
    range: RunRange
    settings: dict[str, Any] = Field(description="what was asked: costs, lookback, and per kind its own")
    params: dict[str, Any] | None = Field(
        default=None,
        description="a backtest's parameters, a study's best trial's; null for a walk-forward "
        "(its windows each have their own)",
    )
    metrics: dict[str, Any] = Field(
        description="return_pct, max_drawdown_pct, sharpe, sortino, profit_factor, win_rate, trade_count, "
        "final_equity, candles (and wfe for a walk-forward); null where the run has none: a study's are its "
        "best trial run in full, a walk-forward's the stitched out-of-sample curve's",
    )
    error: str | None = None
    created_at: dt.datetime
    finished_at: dt.datetime | None = None
    equity: list[list[int | float]] | None = Field(
        default=None, description="[[time ms, equity, drawdown %], ...] (one run and compare)"
    )
    trades: list[dict[str, Any]] | None = Field(
        default=None,
        description="the trades (a quoting backtest: its fills; a walk-forward: out of sample, "
        "with their window) (one run only)",
    )
    detail: dict[str, Any] | None = Field(
        default=None,
        description="per kind (one run only): a backtest's mode and every metric; a study's "
        "objectives, sampler, counts and best trial; a walk-forward's windows, in-sample curve and efficiency",
    )


class RunPage(BaseModel):
    items: list[RunOut]
    next_before: str | None = Field(description="pass as `before` for the next page; null: no more")


class CompareRow(BaseModel):
    key: str
    label: str
    better: Literal["higher", "lower"] | None
    values: list[float | int | None] = Field(description="one per run, in the order asked")
    best: list[int] = Field(description="the indices of the runs with the best value")


class CompareOut(BaseModel):
    runs: list[RunOut]
    metrics: list[CompareRow]


# -- one run, as a document ---------------------------------------------------------------------------------------
def _headline(metrics: dict[str, Any], trades: list[Any] | None) -> dict[str, Any]:
    out = {key: metrics.get(key) for key, *_ in report.HEADLINE if key in metrics}
    if "trade_count" not in out and trades is not None:
        out["trade_count"] = len(trades)
    return out


def _span(cfg: dict[str, Any], seen: dict[str, Any] | None) -> RunRange:
    seen = seen or {}
    return RunRange.model_validate(
        {
            "from": cfg.get("from"),
            "to": cfg.get("to"),
            "first": seen.get("first"),
            "last": seen.get("last"),
            "candles": seen.get("candles"),
        }
    )


def document(
    kind: Kind,
    row: Any,
    strategy: str,
    exchange: str,
    symbol: str,
    *,
    full: bool = False,
    equity: bool = False,
) -> RunOut:
    """The run document of a row of ``kind``: with ``full`` its trades and detail, with ``equity`` its curve."""
    cfg = dict(row.config or {})
    result = row.result or {}
    error = row.error
    params: dict[str, Any] | None
    if kind == "backtest":
        mode = result.get("mode")
        trades = result.get("fills") if mode else result.get("trades")
        seen = bt._range(row)
        rng = RunRange(**seen.model_dump(by_alias=True)) if seen is not None else _span(cfg, None)
        status, settings, params = row.status, cfg, dict(row.params or {})
        detail = {"mode": mode, "metrics": result.get("metrics")}
        curve = result.get("equity")
    elif kind == "study":
        summary = row.summary or {}
        trades = result.get("trades")
        rng = _span(cfg, result.get("range"))
        status, settings = st._status(row), {**(cfg.get("study") or {}), "trials": row.trials}
        best = summary.get("best") or {}
        params = result.get("params") or best.get("params")
        study_cfg = opt.StudyConfig.of(cfg.get("study") or {})
        detail = {
            "objectives": list(study_cfg.objectives),
            "directions": study_cfg.directions,
            "sampler": study_cfg.sampler,
            "trials": row.trials,
            "counts": summary.get("counts") or {},
            "best_trial": best or None,
            "space": row.space,
        }
        curve = result.get("equity")
        error = error or result.get("error")
    else:
        trades = result.get("trades")
        rng = _span(cfg, result.get("range"))
        status, params = wfr.status_of(row), None
        settings = {
            "mode": cfg.get("mode"),
            "train": cfg.get("train_text"),
            "test": cfg.get("test_text"),
            "split": cfg.get("split"),
            "trials_per_window": cfg.get("trials"),
            **(cfg.get("study") or {}),
        }
        detail = {k: result.get(k) for k in WF_DETAIL}
        curve = result.get("oos_equity")
    return RunOut(
        ref=f"{kind}:{row.id}",
        kind=kind,
        id=row.id,
        status=status,
        strategy_id=row.strategy_id,
        strategy=strategy,
        version=row.version,
        draft=getattr(row, "code", None) is not None,
        market_id=row.market_id,
        exchange=exchange,
        symbol=symbol,
        timeframe=row.timeframe,
        range=rng,
        settings=settings,
        params=params,
        metrics=_headline(result.get("metrics") or {}, trades),
        error=error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        equity=curve if (equity or full) else None,
        trades=trades if full else None,
        detail=detail if full else None,
    )


def _query(repo: Owned, kind: Kind) -> Any:
    model = MODELS[kind]
    return (
        repo.select(model)
        .add_columns(Strategy.name, Market.exchange, Market.symbol)
        .join(Strategy, Strategy.id == model.strategy_id)
        .join(Market, Market.id == model.market_id)
    )


async def _one(repo: Owned, kind: Kind, run_id: int) -> tuple[Any, str, str, str]:
    model = MODELS[kind]
    found = (await repo.s.execute(_query(repo, kind).where(model.id == run_id))).first()
    if found is None:
        raise ApiError(404, f"run {kind}:{run_id} not found")
    return found


async def _code(repo: Owned, row: Any) -> str | None:
    """The code the run ran: a backtest's own (the editor's, unsaved) or its strategy version's."""
    if getattr(row, "code", None) is not None:
        return row.code
    q = select(StrategyVersion.code).where(
        StrategyVersion.strategy_id == row.strategy_id, StrategyVersion.version == row.version
    )
    return (await repo.s.execute(q)).scalar_one_or_none()


async def full_document(repo: Owned, kind: Kind, run_id: int) -> tuple[RunOut, str | None, Any]:
    """One run in full, its strategy version's code, and its row."""
    row, name, exchange, symbol = await _one(repo, kind, run_id)
    doc = document(kind, row, name, exchange, symbol, full=True)
    code = await _code(repo, row)
    doc.code_sha256 = hashlib.sha256(code.encode()).hexdigest() if code is not None else None
    return doc, code, row


# -- the routes ---------------------------------------------------------------------------------------------------
@router.get("", response_model=RunPage)
async def list_runs(
    repo: OwnedDep,
    kind: Annotated[Kind | None, Query(description="only runs of this kind")] = None,
    strategy_id: QueryId = None,
    limit: Annotated[int, Query(ge=1, le=200, description="page size")] = 50,
    before: Annotated[
        str | None, Query(max_length=40, description="next_before of the previous page")
    ] = None,
) -> RunPage:
    """Your runs of every kind, newest first: strategy and version, market, range, settings, headline metrics
    (no curves, trades or detail)."""
    cursor = None
    if before is not None:
        k, i = _parse_ref(before, "before")
        cursor = (k, i, (await _one(repo, k, i))[0].created_at)
    found: list[tuple[tuple[Any, int, int], RunOut]] = []
    for k in [kind] if kind else list(MODELS):
        model = MODELS[k]
        q = _query(repo, k)
        if strategy_id is not None:
            q = q.where(model.strategy_id == strategy_id)
        if cursor is not None:
            ck, ci, ct = cursor
            if RANK[k] < RANK[ck]:
                q = q.where(model.created_at <= ct)
            elif k == ck:
                q = q.where(or_(model.created_at < ct, and_(model.created_at == ct, model.id < ci)))
            else:
                q = q.where(model.created_at < ct)
        q = q.order_by(model.created_at.desc(), model.id.desc()).limit(limit)
        for row, name, exchange, symbol in (await repo.s.execute(q)).all():
            found.append(((row.created_at, RANK[k], row.id), document(k, row, name, exchange, symbol)))
    found.sort(key=lambda x: x[0], reverse=True)
    items = [d for _, d in found[:limit]]
    return RunPage(items=items, next_before=items[-1].ref if len(found) > limit else None)


def _parse_ref(text: str, field: str) -> tuple[Kind, int]:
    found = REF.fullmatch(text.strip())
    if found is None or int(found.group(2)) > MAX_ID:
        raise ApiError(
            422,
            f"{text.strip()[:40]!r}: name a run as kind:id (backtest:12, study:3, walkforward:7)",
            field=field,
        )
    return cast(Kind, found.group(1)), int(found.group(2))  # REF matches the three kinds only


@router.get("/compare", response_model=CompareOut)
async def compare(
    repo: OwnedDep,
    runs: Annotated[
        str, Query(max_length=400, description="2 to 10 runs, comma-separated: backtest:12,study:3")
    ],
) -> CompareOut:
    """Runs side by side: each run's document with its equity curve, and the headline metrics in rows (one
    value per run, and which runs have the best)."""
    refs = [_parse_ref(r, "runs") for r in runs.split(",") if r.strip()]
    if not 2 <= len(refs) <= MAX_COMPARE:
        raise ApiError(422, f"compare 2 to {MAX_COMPARE} runs, not {len(refs)}", field="runs")
    if len(set(refs)) != len(refs):
        raise ApiError(422, "a run is named twice", field="runs")
    docs = []
    for k, i in refs:
        row, name, exchange, symbol = await _one(repo, k, i)
        docs.append(document(k, row, name, exchange, symbol, equity=True))
    rows = report.compare([d.model_dump(mode="json") for d in docs])
    return CompareOut(runs=docs, metrics=[CompareRow(**r) for r in rows])


@router.get("/{kind}/{run_id}", response_model=RunOut)
async def get(kind: KindPath, run_id: RunId, repo: OwnedDep) -> RunOut:
    """One run in full: its document with the equity curve, the trades, the detail of its kind and the SHA-256
    of the code it ran."""
    return (await full_document(repo, kind, run_id))[0]


def _attachment(kind: str, run_id: int, ext: str) -> dict[str, str]:
    return {
        "Content-Disposition": f'attachment; filename="tradewind-{kind}-{run_id}.{ext}"',
        "X-Content-Type-Options": "nosniff",
    }


class CsvResponse(Response):
    media_type = "text/csv"


@router.get("/{kind}/{run_id}/trades.csv", response_class=CsvResponse)
async def export_csv(kind: KindPath, run_id: RunId, repo: OwnedDep) -> CsvResponse:
    """The run's trades as CSV (a quoting backtest: its fills; a walk-forward: its out-of-sample trades with
    their window), as an attachment."""
    doc, _, _ = await full_document(repo, kind, run_id)
    return CsvResponse(
        report.trades_csv(doc.model_dump(mode="json")), headers=_attachment(kind, run_id, "csv")
    )


@router.get("/{kind}/{run_id}/export.json", response_model=dict[str, Any])
async def export_json(kind: KindPath, run_id: RunId, repo: OwnedDep, request: Request) -> JSONResponse:
    """Everything kept of the run, as an attachment: its document in full, the code of the strategy version it
    ran, and for a study every trial and the parameters' importances."""
    doc, code, row = await full_document(repo, kind, run_id)
    out: dict[str, Any] = {
        "format": "tradewind-run/1",
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        **doc.model_dump(mode="json"),
        "code": code,
    }
    if kind == "study":
        try:
            trials, best, importances = await asyncio.to_thread(
                st._reader(request).detail, row.optuna_name, tuple(out["detail"]["objectives"])
            )
        except opt.OptimizeError as exc:
            raise ApiError(503, str(exc)) from None
        out["trials"], out["best"], out["importances"] = trials, best, importances
    return JSONResponse(out, headers=_attachment(kind, run_id, "json"))


@router.get("/{kind}/{run_id}/report.html", response_class=HTMLResponse)
async def export_html(kind: KindPath, run_id: RunId, repo: OwnedDep) -> HTMLResponse:
    """A self-contained HTML report of the run (metrics, settings, equity and drawdown charts as inline SVG,
    a walk-forward's windows and in-sample/out-of-sample chart, the trades, the code), as an attachment: no
    script, nothing fetched, so it opens offline."""
    doc, code, _ = await full_document(repo, kind, run_id)
    html = report.report_html({**doc.model_dump(mode="json"), "code": code})
    headers = {
        **_attachment(kind, run_id, "html"),
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    return HTMLResponse(html, headers=headers)
