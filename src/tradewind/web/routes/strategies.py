"""Strategies and their versions; code is validated in the sandbox on save."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from tradewind.eval.executor import ValidationBusy, ValidationPool, ValidationUnavailable
from tradewind.storage.models import Assignment, Strategy, StrategyVersion
from tradewind.web.deps import Cursor, Limit, ObjectId, OwnedDep, StateDep, not_found, page
from tradewind.web.errors import ApiError
from tradewind.web.events import assignments_changed
from tradewind.web.schemas import (
    CodeIn,
    Diagnostic,
    StrategyIn,
    StrategyOut,
    StrategyPage,
    StrategyPatch,
    ValidationOut,
    VersionOut,
)

router = APIRouter(prefix="/api/strategies", tags=["strategies"])


def _validator(request: Request) -> ValidationPool:
    return request.app.state.validator  # type: ignore[no-any-return]


ValidatorDep = Annotated[ValidationPool, Depends(_validator)]


async def check(pool: ValidationPool, code: str, user_id: int) -> list[Diagnostic]:
    # Compiling runs the strategy's top level in a throwaway sandbox, in a child process killed when it
    # runs past its deadline: never in this process, where a runaway could only be waited for.
    try:
        found = await pool.validate(code, user_id)
    except ValidationBusy:
        raise ApiError(429, "a validation of your code is still running; wait for it to finish",
                       headers={"Retry-After": "1"}) from None  # fmt: skip
    except ValidationUnavailable:
        raise ApiError(503, "strategy validation is unavailable right now; try again shortly",
                       headers={"Retry-After": "5"}) from None  # fmt: skip
    return [Diagnostic(line=d.line, message=d.message) for d in found]


async def _require_valid(pool: ValidationPool, code: str, user_id: int) -> None:
    errors = await check(pool, code, user_id)
    if errors:
        raise ApiError(
            422,
            {
                "detail": f"the code has errors: {errors[0].message}",  # type: ignore[arg-type]
                "errors": [{"field": "code", "message": e.message, "line": e.line} for e in errors],
            },
        )


def out(s: Strategy, v: StrategyVersion) -> StrategyOut:
    return StrategyOut(id=s.id, name=s.name, description=s.description, code=v.code, version=s.latest_version,
                       params=v.params_schema or {}, created_at=s.created_at, updated_at=s.updated_at)  # fmt: skip


@router.post("/validate", response_model=ValidationOut)
async def validate_code(body: CodeIn, repo: OwnedDep, pool: ValidatorDep) -> ValidationOut:
    errors = await check(pool, body.code, repo.user_id)
    return ValidationOut(ok=not errors, errors=errors)


@router.get("", response_model=StrategyPage)
async def list_strategies(repo: OwnedDep, limit: Limit = 100, before_id: Cursor = None) -> dict:
    items = []
    for s in await repo.page(Strategy, limit, before_id):
        v = await repo.version(s, s.latest_version)
        items.append(out(s, v).model_dump(mode="json"))  # type: ignore[arg-type]
    return page(items, limit)


@router.post("", status_code=201, response_model=StrategyOut)
async def create(body: StrategyIn, repo: OwnedDep, pool: ValidatorDep) -> StrategyOut:
    await _require_valid(pool, body.code, repo.user_id)
    s = repo.add(Strategy(name=body.name, description=body.description, latest_version=1))
    await repo.s.flush()
    v = StrategyVersion(strategy_id=s.id, version=1, code=body.code, params_schema=body.params)
    repo.s.add(v)
    await repo.s.commit()
    return out(s, v)


async def _get(repo: OwnedDep, strategy_id: int) -> Strategy:
    s = await repo.get(Strategy, strategy_id)
    if s is None:
        raise not_found("strategy")
    return s


@router.get("/{strategy_id}", response_model=StrategyOut)
async def get(strategy_id: ObjectId, repo: OwnedDep) -> StrategyOut:
    s = await _get(repo, strategy_id)
    return out(s, await repo.version(s, s.latest_version))  # type: ignore[arg-type]


@router.patch("/{strategy_id}", response_model=StrategyOut)
@router.put("/{strategy_id}", response_model=StrategyOut, include_in_schema=False)
async def update(
    strategy_id: ObjectId, body: StrategyPatch, repo: OwnedDep, st: StateDep, pool: ValidatorDep
) -> StrategyOut:
    s = await _get(repo, strategy_id)
    current = await repo.version(s, s.latest_version)
    assert current is not None
    if body.name is not None:
        s.name = body.name
    if body.description is not None:
        s.description = body.description
    code = body.code if body.code is not None else current.code
    params = body.params if body.params is not None else current.params_schema
    if code != current.code or params != current.params_schema:
        if code != current.code:
            await _require_valid(pool, code, repo.user_id)
        s.latest_version += 1
        current = StrategyVersion(strategy_id=s.id, version=s.latest_version, code=code, params_schema=params)
        repo.s.add(current)
    await repo.s.commit()
    await assignments_changed(st)  # running assignments follow the newest version
    return out(s, current)


@router.delete("/{strategy_id}", status_code=204)
async def delete(strategy_id: ObjectId, repo: OwnedDep, st: StateDep) -> Response:
    s = await _get(repo, strategy_id)
    # Its assignments go with it: not while one of them holds a position only it can close.
    holding = (await repo.s.execute(repo.select(Assignment).where(Assignment.strategy_id == s.id, Assignment.position_qty > 0)
                                    .limit(1))).first()  # fmt: skip
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
async def versions(strategy_id: ObjectId, repo: OwnedDep) -> list[VersionOut]:
    s = await _get(repo, strategy_id)
    return [VersionOut(version=v.version, code=v.code, params=v.params_schema or {}, created_at=v.created_at)
            for v in await repo.versions(s)]  # fmt: skip
