"""Strategies and their versions; code is validated in the sandbox on save."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from tradewind.eval.validation import ValidationPool
from tradewind.storage.models import Assignment, Strategy, StrategyVersion
from tradewind.web import declared
from tradewind.web.declared import ValidatorDep
from tradewind.web.deps import Cursor, Limit, ObjectId, OwnedDep, StateDep, found, page
from tradewind.web.errors import ApiError
from tradewind.web.events import assignments_changed
from tradewind.web.schemas import (
    CodeIn,
    Diagnostic,
    ParamDeclOut,
    StrategyIn,
    StrategyOut,
    StrategyPage,
    StrategyPatch,
    StrategySaved,
    SwitchOut,
    ValidationOut,
    VersionOut,
)

router = APIRouter(prefix="/api/strategies", tags=["strategies"])


async def check(pool: ValidationPool, code: str, user_id: int) -> list[Diagnostic]:
    # Compiling runs the strategy's top level in a throwaway sandbox, in a child process killed when it
    # runs past its deadline: never in this process, where a runaway could only be waited for.
    inspection = await declared.inspect(pool, code, user_id)
    return [Diagnostic(line=d.line, message=d.message) for d in inspection.diagnostics]


def _declared(v: StrategyVersion) -> list[ParamDeclOut] | None:
    """What the version declares, as the API shows it (kept as the dicts the sandbox read)."""
    return None if v.declared is None else [ParamDeclOut.model_validate(d) for d in v.declared]


def out(s: Strategy, v: StrategyVersion) -> StrategyOut:
    return StrategyOut(
        id=s.id,
        name=s.name,
        description=s.description,
        code=v.code,
        version=s.latest_version,
        params=v.params_schema or {},
        declared=_declared(v),
        created_at=s.created_at,
        updated_at=s.updated_at,
    )


@router.post("/validate", response_model=ValidationOut)
async def validate_code(body: CodeIn, repo: OwnedDep, pool: ValidatorDep) -> ValidationOut:
    errors = await check(pool, body.code, repo.user_id)
    return ValidationOut(ok=not errors, errors=errors)


@router.get("", response_model=StrategyPage)
async def list_strategies(
    repo: OwnedDep, pool: ValidatorDep, limit: Limit = 100, before_id: Cursor = None
) -> dict[str, Any]:
    items = []
    for s in await repo.page(Strategy, limit, before_id):
        v = await repo.version(s, s.latest_version)
        assert v is not None
        await declared.of_version(pool, v, repo.user_id, required=False)
        items.append(out(s, v).model_dump(mode="json"))
    await repo.s.commit()  # the declarations read just now, of versions saved before they were kept
    return page(items, limit)


@router.post("", status_code=201, response_model=StrategyOut)
async def create(body: StrategyIn, repo: OwnedDep, pool: ValidatorDep) -> StrategyOut:
    decl = await declared.read(pool, body.code, repo.user_id)
    params = declared.check(decl, body.params)
    s = repo.add(Strategy(name=body.name, description=body.description, latest_version=1))
    await repo.s.flush()
    v = StrategyVersion(strategy_id=s.id, version=1, code=body.code, params_schema=params, declared=decl)
    repo.s.add(v)
    await repo.s.commit()
    return out(s, v)


async def _get(repo: OwnedDep, strategy_id: int) -> Strategy:
    return found(await repo.get(Strategy, strategy_id), "strategy")


@router.get("/{strategy_id}", response_model=StrategyOut)
async def get(strategy_id: ObjectId, repo: OwnedDep, pool: ValidatorDep) -> StrategyOut:
    s = await _get(repo, strategy_id)
    v = await repo.version(s, s.latest_version)
    assert v is not None
    await declared.of_version(pool, v, repo.user_id, required=False)
    await repo.s.commit()
    return out(s, v)


@router.patch("/{strategy_id}", response_model=StrategySaved)
@router.put("/{strategy_id}", response_model=StrategySaved, include_in_schema=False)
async def update(
    strategy_id: ObjectId, body: StrategyPatch, repo: OwnedDep, st: StateDep, pool: ValidatorDep
) -> StrategySaved:
    """Change a strategy; new code or default parameters make a new version. The answer says which of its
    assignments switch to it (those that follow the latest) and which stay on the version they are pinned to."""
    s = await _get(repo, strategy_id)
    current = await repo.version(s, s.latest_version)
    assert current is not None
    if body.name is not None:
        s.name = body.name
    if body.description is not None:
        s.description = body.description
    code = body.code if body.code is not None else current.code
    params = body.params if body.params is not None else current.params_schema
    new_version = code != current.code or params != current.params_schema
    if new_version:
        if code != current.code:
            decl = await declared.read(pool, code, repo.user_id)
        else:
            decl = await declared.of_version(pool, current, repo.user_id)
        params = declared.check(decl, params)
        s.latest_version += 1
        current = StrategyVersion(
            strategy_id=s.id, version=s.latest_version, code=code, params_schema=params, declared=decl
        )
        repo.s.add(current)
    switched, pinned = await _switches(repo, s, current) if new_version else ([], [])
    await repo.s.commit()
    await assignments_changed(st)  # the assignments that follow the latest version run the new one
    return StrategySaved(**out(s, current).model_dump(), switched=switched, pinned=pinned)


async def _switches(
    repo: OwnedDep, s: Strategy, v: StrategyVersion
) -> tuple[list[SwitchOut], list[SwitchOut]]:
    """The strategy's assignments that switch to the new version ``v`` (with a warning where their parameters
    do not fit what it declares), and those that stay on the version they are pinned to."""
    rows = (
        (
            await repo.s.execute(
                repo.select(Assignment).where(Assignment.strategy_id == s.id).order_by(Assignment.id)
            )
        )
        .scalars()
        .all()
    )
    switched, pinned = [], []
    for a in rows:
        item = SwitchOut(
            id=a.id,
            market_id=a.market_id,
            timeframe=a.timeframe,
            enabled=a.enabled,
            version=a.pinned_version or v.version,
        )
        if a.pinned_version is None:
            wrong = declared.problem(v.declared, a.params or {})
            item.warning = f"its parameters do not fit version {v.version}: {wrong}" if wrong else None
            switched.append(item)
        else:
            pinned.append(item)
    return switched, pinned


@router.delete("/{strategy_id}", status_code=204)
async def delete(strategy_id: ObjectId, repo: OwnedDep, st: StateDep) -> Response:
    s = await _get(repo, strategy_id)
    # Its assignments go with it: not while one of them holds a position only it can close.
    holding = (
        await repo.s.execute(
            repo.select(Assignment)
            .where(Assignment.strategy_id == s.id, Assignment.position_qty > 0)
            .limit(1)
        )
    ).first()
    if holding is not None:
        raise ApiError(
            409,
            'an assignment of this strategy holds a position; close it first (Close position, or a "short" decision)',
        )
    await repo.delete(s)
    await repo.s.commit()
    await assignments_changed(st)
    return Response(status_code=204)


@router.get("/{strategy_id}/versions", response_model=list[VersionOut])
async def versions(strategy_id: ObjectId, repo: OwnedDep, pool: ValidatorDep) -> list[VersionOut]:
    s = await _get(repo, strategy_id)
    kept = await repo.versions(s)
    for v in kept:
        await declared.of_version(pool, v, repo.user_id, required=False)
    await repo.s.commit()
    return [
        VersionOut(
            version=v.version,
            code=v.code,
            params=v.params_schema or {},
            declared=_declared(v),
            created_at=v.created_at,
        )
        for v in kept
    ]
