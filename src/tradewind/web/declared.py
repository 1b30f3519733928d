"""A strategy's declared parameters in the web app: read when its code is checked, kept with its version, and
every parameter a request sets checked against them by the one rule of ``tradewind.sandbox.params``."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Annotated, Any, Literal, overload

from fastapi import Depends, Request

from tradewind.eval.validation import Inspection, ValidationBusy, ValidationPool, ValidationUnavailable
from tradewind.sandbox.params import DeclarationError, ParamError, ParamSpec, check_params, from_dicts
from tradewind.storage.models import StrategyVersion
from tradewind.web.errors import ApiError

log = logging.getLogger(__name__)


async def _validator(request: Request) -> ValidationPool:  # async: no thread pool hop (see deps.state)
    return request.app.state.validator


ValidatorDep = Annotated[ValidationPool, Depends(_validator)]


async def inspect(pool: ValidationPool, code: str, user: Hashable) -> Inspection:
    """Compile ``code`` in the validation pool's sandbox (never in this process): its errors and, when it
    has none, its declared parameters. A full pool is a 429, none at all a 503."""
    try:
        return await pool.inspect(code, user)
    except ValidationBusy:
        raise ApiError(
            429,
            "a validation of your code is still running; wait for it to finish",
            headers={"Retry-After": "1"},
        ) from None
    except ValidationUnavailable:
        raise ApiError(
            503,
            "strategy validation is unavailable right now; try again shortly",
            headers={"Retry-After": "5"},
        ) from None


async def read(pool: ValidationPool, code: str, user: Hashable) -> list[dict[str, Any]]:
    """The parameters ``code`` declares; code with errors is a 422 listing them on their lines."""
    found = await inspect(pool, code, user)
    if found.diagnostics:
        first = found.diagnostics[0]
        raise ApiError(
            422,
            {
                "detail": f"the code has errors: {first.message}",
                "errors": [
                    {"field": "code", "message": d.message, "line": d.line} for d in found.diagnostics
                ],
            },
        )
    return found.declared


@overload
async def of_version(
    pool: ValidationPool, v: StrategyVersion, user: Hashable, required: Literal[True] = True
) -> list[dict[str, Any]]: ...
@overload
async def of_version(
    pool: ValidationPool, v: StrategyVersion, user: Hashable, required: bool
) -> list[dict[str, Any]] | None: ...
async def of_version(
    pool: ValidationPool, v: StrategyVersion, user: Hashable, required: bool = True
) -> list[dict[str, Any]] | None:
    """What version ``v`` declares: kept since it was saved, or (a version saved before they were kept) read
    now and set on it for the caller's commit. ``required=False``: None when the pool cannot read it now."""
    if v.declared is not None:
        return v.declared
    try:
        found = await inspect(pool, v.code, user)
    except ApiError:
        if required:
            raise
        return None
    # Code that no longer loads declares nothing that can be read; its assignments fail on their own.
    v.declared = [] if found.diagnostics else found.declared
    return v.declared


def specs(declared: list[dict[str, Any]] | None) -> dict[str, ParamSpec]:
    if not declared:
        return {}
    try:
        return from_dicts(declared)
    except DeclarationError:  # stored by an older reader under rules since made stricter: checks nothing
        log.warning("a stored declaration no longer reads: %s", declared)
        return {}


def problem(declared: list[dict[str, Any]] | None, params: dict[str, Any]) -> ParamError | None:
    """What is wrong with ``params`` for a strategy that declares ``declared``, or None."""
    try:
        check_params(specs(declared), params)
    except ParamError as exc:
        return exc
    return None


def check(
    declared: list[dict[str, Any]] | None, params: dict[str, Any], field: str = "params"
) -> dict[str, Any]:
    """``params`` as the declaration takes them, or a 422 naming the parameter (``params.fast``)."""
    try:
        return check_params(specs(declared), params)
    except ParamError as exc:
        where = f"{field}.{exc.name}"
        raise ApiError(
            422,
            {
                "detail": f"{where}: {exc.message}",
                "errors": [{"field": where, "message": exc.message}],
            },
        ) from None
