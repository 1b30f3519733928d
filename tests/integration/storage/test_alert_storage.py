"""Alert channels and their deliveries in storage (revision 0009), on SQLite and PostgreSQL: outcomes are
counted on the channel and the newest kept per channel; both go with their owner; 0009 comes off cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt

from alembic import command
from sqlalchemy import inspect, select, text

from tradewind.alerts.channels import Channel
from tradewind.alerts.delivery import Outcome
from tradewind.alerts.events import Alert
from tradewind.alerts.outcomes import OutcomeLog
from tradewind.storage.migrate import alembic_config, upgrade
from tradewind.storage.models import AlertChannel, AlertDelivery, User

T0 = dt.datetime(2026, 12, 4, 12, tzinfo=dt.UTC)


async def _channels(sf, n: int = 2) -> list[Channel]:  # type: ignore[no-untyped-def]
    async with sf() as s:
        user = User(email="owner@example.com", password_hash="x")
        s.add(user)
        await s.flush()
        rows = [
            AlertChannel(owner_id=user.id, kind="webhook", name=f"c{i}", events=["fill"], config={})
            for i in range(n)
        ]
        s.add_all(rows)
        await s.commit()
        return [Channel.of(r) for r in rows]


def _outcome(ch: Channel, n: int, status: str = "sent", error: str | None = None) -> Outcome:
    alert = Alert(user_id=ch.owner_id, event="fill", title=f"alert {n}", text="")
    return Outcome(ch, alert, status, 1 if status != "dropped" else 0, error, T0 + dt.timedelta(seconds=n))


async def test_outcomes_are_counted_on_the_channel_and_the_newest_deliveries_kept(sf) -> None:  # type: ignore[no-untyped-def]
    one, two = await _channels(sf)
    log = OutcomeLog(sf, keep=3)
    for n in range(5):
        log.add(_outcome(one, n))
    log.add(_outcome(one, 5, "failed", "HTTP 500"))
    log.add(_outcome(one, 6, "dropped", "dropped: 100 newer alerts were waiting"))
    log.add(_outcome(two, 7))
    gone = Channel(
        id=99_999,
        owner_id=one.owner_id,
        kind="webhook",
        name="deleted meanwhile",
        events=frozenset(),
        enabled=True,
        config={},
        secret_enc=None,
    )
    log.add(_outcome(gone, 8))
    await log.stop()  # writes what is buffered
    async with sf() as s:
        row = await s.get(AlertChannel, one.id)
        kept = (
            (
                await s.execute(
                    select(AlertDelivery.title)
                    .where(AlertDelivery.channel_id == one.id)
                    .order_by(AlertDelivery.id)
                )
            )
            .scalars()
            .all()
        )
        other = (
            (await s.execute(select(AlertDelivery.title).where(AlertDelivery.channel_id == two.id)))
            .scalars()
            .all()
        )
    assert (row.delivered, row.failed, row.dropped, row.last_error) == (5, 1, 1, "HTTP 500")
    assert row.last_success_at == T0 + dt.timedelta(seconds=4) and row.last_failure_at == T0 + dt.timedelta(
        seconds=5
    )
    assert kept == ["alert 4", "alert 5", "alert 6"] and other == ["alert 7"]


async def test_channels_and_deliveries_go_with_their_owner(sf) -> None:  # type: ignore[no-untyped-def]
    (one,) = await _channels(sf, 1)
    log = OutcomeLog(sf)
    log.add(_outcome(one, 1))
    await log.stop()
    async with sf() as s:
        await s.execute(text("DELETE FROM users"))
        await s.commit()
        left = [
            (await s.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
            for t in ("alert_channels", "alert_deliveries")
        ]
    assert left == [0, 0]


async def test_0009_comes_off_and_back_on_cleanly(sf) -> None:  # type: ignore[no-untyped-def]
    url = sf.kw["bind"].url.render_as_string(hide_password=False)
    await sf.kw["bind"].dispose()

    async def tables() -> set[str]:
        async with sf.kw["bind"].connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))

    await asyncio.to_thread(command.downgrade, alembic_config(url), "0008")
    assert not {"alert_channels", "alert_deliveries"} & await tables()
    await sf.kw["bind"].dispose()
    await asyncio.to_thread(upgrade, url)
    assert {"alert_channels", "alert_deliveries"} <= await tables()
