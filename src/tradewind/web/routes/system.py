"""Health, metrics, the kill switch, and the operators' view."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from nats.aio.client import Client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.storage.models import Assignment, Order, Strategy, Trader, User
from tradewind.web.close import ask_core, audit_detail
from tradewind.web.deps import AdminUser, CurrentUser, OwnedDep, SessionDep, StateDep, client_address
from tradewind.web.errors import ApiError
from tradewind.web.events import assignments_changed, user_event
from tradewind.web.routes.assignments import KILL_SWITCH
from tradewind.web.schemas import FlattenOut, KillOut

router = APIRouter(tags=["system"])
log = logging.getLogger(__name__)


@router.get("/api/health", tags=["system"])
async def health(s: SessionDep, st: StateDep, response: Response) -> dict[str, Any]:
    db = "ok"
    try:
        await s.execute(text("SELECT 1 FROM users LIMIT 1"))  # reachable, and migrated
    except Exception as exc:
        db = f"error: {type(exc).__name__}"
    bus = (
        "ok"
        if st.nc is not None and st.nc.is_connected
        else ("disabled" if st.nc is None else "disconnected")
    )
    ok = db == "ok" and bus != "disconnected"
    if not ok:
        response.status_code = 503
    return {"status": "ok" if ok else "degraded", "database": db, "nats": bus}


@router.get("/metrics", include_in_schema=False)
async def metrics(st: StateDep) -> Response:
    own = generate_latest()
    if st.more_metrics is not None:
        try:
            own = await st.more_metrics(own)
        except Exception as exc:  # the web's own figures still answer
            log.warning("the other processes' metrics are not available: %s", exc)
    return Response(own, media_type=CONTENT_TYPE_LATEST)


#: Families that describe one process (its memory, CPU, garbage collector): in a combined exposition, those of
#: the process that answers the scrape; added up over processes they would mean nothing.
PER_PROCESS = ("process_", "python_")


class _Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def combine_metrics(texts: list[bytes]) -> bytes:
    """Several processes' Prometheus text as one exposition, as if one process had counted it all.

    `tradewind up` runs the web server in several processes and everything else in another; Prometheus
    scrapes one address and reaches one web process, which answers for all of them. A sample with the
    same name and labels in several texts is added up (requests, latency buckets, candles), except that the
    ``process_*``/``python_*`` families are the first text's and a ``*_created`` timestamp is the earliest."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for exposition in texts:
        for fam in text_string_to_metric_families(exposition.decode()):
            if fam.name in families and fam.name.startswith(PER_PROCESS):
                continue
            if fam.name not in families:
                families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                values[fam.name] = {}
            samples = values[fam.name]
            earliest = fam.name.endswith("_created")
            for sample in fam.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in samples:
                    samples[key] = sample.value
                elif earliest:
                    samples[key] = min(samples[key], sample.value)
                else:
                    samples[key] += sample.value
    for name, fam in families.items():
        for (sample_name, labels), value in values[name].items():
            fam.add_sample(sample_name, dict(labels), value)
    return generate_latest(_Families(list(families.values())))


@router.post("/api/killswitch", tags=["risk"], response_model=KillOut, response_model_exclude_none=True)
async def kill(
    repo: OwnedDep,
    user: CurrentUser,
    st: StateDep,
    request: Request,
    flatten: Annotated[bool, Query(description="also close every open position at the market")] = False,
) -> KillOut:
    """Stop everything now: pause every assignment and cancel every open order of this user; with
    ``flatten=true`` core also sells every open position at the market."""
    me = await repo.s.get(User, user.id)
    assert me is not None
    me.killed = True
    paused = await repo.update_all(
        Assignment, Assignment.enabled.is_(True), enabled=False, paused_reason=KILL_SWITCH
    )
    open_orders = (
        (await repo.s.execute(repo.select(Order).where(Order.status.in_(("open", "pending")))))
        .scalars()
        .all()
    )
    repo.audit_log("killswitch.on", client_address(request), paused=paused, open_orders=len(open_orders))
    await repo.s.commit()
    await assignments_changed(st)
    cancelled = 0
    if st.nc is not None and open_orders:
        results = await asyncio.gather(*(_cancel(st.nc, o) for o in open_orders))
        cancelled = sum(results)
    out = KillOut(killed=True, paused_assignments=paused, cancel_requests=cancelled)
    await user_event(
        st,
        user.id,
        m.KillSwitchEvent(
            engaged=True, paused_assignments=paused, cancel_requests=cancelled, flatten=flatten
        ),
    )
    if flatten:  # the kill holds whatever happens here: a core out of reach is said, not an error
        try:
            out.closed = await ask_core(st, user.id, None, "kill switch")
        except ApiError as exc:
            out.flatten_error = exc.detail
        repo.audit_log(
            "positions.flatten",
            client_address(request),
            via="kill switch",
            **audit_detail(out.closed or []),
            error=out.flatten_error,
        )
        await repo.s.commit()
    return out


@router.post("/api/flatten", tags=["risk"], response_model=FlattenOut)
async def flatten_all(repo: OwnedDep, user: CurrentUser, st: StateDep, request: Request) -> FlattenOut:
    """Close every open position now: core sells what each assignment holds at the market (running or
    paused) and cancels its resting orders. The assignments keep running: pause them, or use the kill
    switch with flatten=true, to stop them buying again."""
    held = (
        await repo.s.execute(
            repo.select(Assignment)
            .where(Assignment.position_qty > 0, Assignment.trader_id.is_not(None))
            .limit(1)
        )
    ).first()
    if held is None:
        raise ApiError(409, "nothing to close: no assignment holds a position")
    closed = await ask_core(st, user.id, None, "flatten")
    repo.audit_log("positions.flatten", client_address(request), **audit_detail(closed))
    await repo.s.commit()
    if not closed:
        raise ApiError(409, "nothing to close: no assignment holds a position")
    return FlattenOut(closed=closed)


async def _cancel(nc: Client, o: Order) -> bool:
    """Ask the order's exchange to cancel it; the order's state comes back on the order updates."""
    msg = m.CancelOrder(
        owner_id=o.owner_id, trader_id=o.trader_id, client_order_id=o.client_order_id, symbol=o.symbol
    )
    try:
        await nc.request(subjects.exchange_cancel(o.exchange), m.encode(msg), timeout=5)
        return True
    except Exception as exc:  # no adapter, a timeout: the assignments are paused anyway
        log.warning("kill switch: cancelling %s on %s failed: %s", o.client_order_id, o.exchange, exc)
        return False


@router.delete("/api/killswitch", tags=["risk"])
async def release(repo: OwnedDep, user: CurrentUser, request: Request, st: StateDep) -> dict[str, Any]:
    """Allow trading again; assignments stay paused until you resume each one."""
    me = await repo.s.get(User, user.id)
    assert me is not None
    engaged = me.killed
    me.killed = False
    repo.audit_log("killswitch.off", client_address(request))
    await repo.s.commit()
    if engaged:
        await user_event(st, user.id, m.KillSwitchEvent(engaged=False))
    return {"killed": False}


@router.get("/api/admin/users", tags=["admin"])
async def users(s: SessionDep, _: AdminUser) -> list[dict[str, Any]]:
    counts = {}
    for model in (Strategy, Trader, Assignment):
        q = select(model.owner_id, func.count()).group_by(model.owner_id)
        counts[model.__tablename__] = dict((await s.execute(q)).all())
    rows = (await s.execute(select(User).order_by(User.id))).scalars()
    return [
        {
            "id": u.id,
            "email": u.email,
            "is_admin": u.is_admin,
            "killed": u.killed,
            "created_at": u.created_at.isoformat(),
            **{k: v.get(u.id, 0) for k, v in counts.items()},
        }
        for u in rows
    ]


@router.get("/api/admin/health", tags=["admin"])
async def admin_health(s: SessionDep, st: StateDep, _: AdminUser, response: Response) -> dict[str, Any]:
    base = await health(s, st, response)
    by_status = dict((await s.execute(select(Order.status, func.count()).group_by(Order.status))).all())
    active = (
        await s.execute(select(func.count()).select_from(Assignment).where(Assignment.enabled.is_(True)))
    ).scalar_one()
    return {**base, "active_assignments": active, "orders_by_status": by_status}
