"""core.record: the recording of a candle's evaluations, failure counts and pauses, in one transaction,
once its orders are out; and the evaluations published to their owners' live streams."""

from __future__ import annotations

from typing import Any, NamedTuple

from nats.aio.client import Client
from sqlalchemy import bindparam, update

from tradewind.bus import messages as m
from tradewind.core import notices
from tradewind.core.decide import AssignmentIndex, AssignmentState
from tradewind.core.orders import OrderBook, store_protection
from tradewind.metrics import EVAL_DURATION, EVALUATIONS, TICK_TO_DECISION
from tradewind.storage.db import SessionFactory, insert_rows, write_gate
from tradewind.storage.models import Assignment, Evaluation
from tradewind.storage.types import table_of, utcnow

EVALS_OK = EVALUATIONS.labels("ok")  # the labelled child, looked up once
_ASSIGNMENTS = table_of(Assignment)
_EVALUATIONS = table_of(Evaluation)


class Handled(NamedTuple):
    """What ``handle`` leaves for ``record``: one chunk's outcomes and what they change."""

    results: list[tuple[AssignmentState, m.EvalOutcome]]
    tick_ms: float | None  # candle -> decision
    paused: list[tuple[int, str]]  # (assignment, reason)
    reset: list[int]  # assignments whose failure count is back to 0
    notes: dict[int, str]  # assignment -> why its decision was not traded, or traded smaller than asked


class Recorder:
    def __init__(self, nc: Client, sf: SessionFactory, index: AssignmentIndex, orders: OrderBook) -> None:
        self.nc = nc
        self.sf = sf
        self.index = index
        self.orders = orders

    async def record(self, candle: m.Candle, later: list[Handled]) -> None:
        """Store evaluations (and failure counts, and pauses) handled with ``later``, in one transaction."""
        now = utcnow()
        evals: list[dict[str, Any]] = []
        ok = 0  # counted once per candle, not once per evaluation (a lock each: ~1 % of core at 10,000)
        for h in later:
            tick_ms = h.tick_ms
            for st, out in h.results:
                note = out.note
                ours = h.notes.get(st.id)
                if ours:  # the user sees why no order (or a smaller one) followed this decision
                    note = f"{note} · {ours}" if note else ours
                if tick_ms is not None:
                    TICK_TO_DECISION.observe(tick_ms)
                EVAL_DURATION.observe(out.duration_us / 1000)
                if out.status == "ok":
                    ok += 1
                else:
                    EVALUATIONS.labels(out.status).inc()
                evals.append(
                    {
                        "assignment_id": st.id,
                        "candle_time": candle.time,
                        "status": out.status,
                        "position": out.position,
                        "size": out.size,
                        "note": note,
                        "error": out.error,
                        "logs": list(out.logs),
                        "duration_ms": out.duration_us / 1000,
                        "latency_ms": tick_ms,
                        "created_at": now,
                        "plot": out.plot,
                    }
                )
        if ok:
            EVALS_OK.inc(ok)
        results = [r for h in later for r in h.results]
        paused = [p for h in later for p in h.paused]
        reset = [a for h in later for a in h.reset]
        async with write_gate(self.sf), self.sf() as s:
            if evals:
                # Driver-level inserts: the ORM's bulk path costs ~0.1 ms a row, SQLAlchemy Core's executemany
                # runs every bind processor on every row; a candle redelivered finds its rows stored already
                await insert_rows(
                    s, _EVALUATIONS, evals, on_conflict_do_nothing=("candle_time", "assignment_id")
                )
            paused_ids = {aid for aid, _ in paused}
            failing = [st.id for st, out in results if out.status != "ok" and st.id not in paused_ids]
            if failing:
                await s.execute(
                    update(_ASSIGNMENTS)
                    .where(_ASSIGNMENTS.c.id == bindparam("aid"))
                    .values(consecutive_failures=_ASSIGNMENTS.c.consecutive_failures + 1),
                    [{"aid": a} for a in failing],
                )
            if reset:
                await s.execute(
                    update(_ASSIGNMENTS)
                    .where(_ASSIGNMENTS.c.id == bindparam("aid"))
                    .values(consecutive_failures=0),
                    [{"aid": a} for a in reset],
                )
            if self.orders.dirty:
                dirty, self.orders.dirty = self.orders.dirty, {}
                await store_protection(s, dirty)
            for aid, reason in paused:
                await s.execute(
                    update(Assignment)
                    .where(Assignment.id == aid)
                    .values(
                        enabled=False,
                        paused_reason=reason,
                        consecutive_failures=Assignment.consecutive_failures + 1,
                    )
                )
            await s.commit()
        for aid, reason in paused:
            gone = self.index.by_id.get(aid)
            self.index.remove(aid)
            if gone is not None:
                await notices.paused(self.nc, gone, reason)
        await self._publish_evaluations(candle, results)

    async def _publish_evaluations(
        self, candle: m.Candle, results: list[tuple[AssignmentState, m.EvalOutcome]]
    ) -> None:
        for st, out in results:
            await notices.evaluated(self.nc, st, out, candle.time, out.note)
