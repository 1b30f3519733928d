"""Retries with exponential back-off, bounded queues, and one failing channel holding up nobody else."""

from __future__ import annotations

import asyncio

from cryptography.fernet import Fernet

from tradewind.alerts.channels import Channel, seal
from tradewind.alerts.delivery import Dispatcher, Outcome, RetryPolicy
from tradewind.alerts.events import Alert
from tradewind.alerts.senders import DeliveryError
from tradewind.secrets import SecretBox

BOX = SecretBox([Fernet.generate_key().decode()])


def channel(cid: int, kind: str = "webhook", secrets: dict[str, str] | None = None) -> Channel:
    return Channel(
        id=cid,
        owner_id=1,
        kind=kind,
        name=f"c{cid}",
        events=frozenset({"fill"}),
        enabled=True,
        config={},
        secret_enc=seal(BOX, secrets or {"url": "https://example.com/hook", "secret": "s3cret-x"}),
    )


def alert(n: int = 0) -> Alert:
    return Alert(user_id=1, event="fill", title=f"alert {n}", text="t")


class Scripted:
    """A sender that answers from a script: None delivers, an exception fails that attempt."""

    def __init__(
        self,
        *script: DeliveryError | None,
        hang: asyncio.Event | None = None,
        hanging: frozenset[int] = frozenset({1}),
    ) -> None:
        self.script = list(script)
        self.calls: list[tuple[int, str]] = []
        self.hang = hang
        self.hanging = hanging

    async def send(self, ch: Channel, secrets: dict[str, str], a: Alert) -> None:
        self.calls.append((ch.id, a.title))
        if self.hang is not None and ch.id in self.hanging:
            await self.hang.wait()
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step


class Harness:
    def __init__(
        self, sender: Scripted, policy: RetryPolicy = RetryPolicy(jitter=0), queue_size: int = 100
    ) -> None:
        self.outcomes: list[Outcome] = []
        self.waits: list[float] = []

        async def sleep(s: float) -> None:
            self.waits.append(s)

        self.d = Dispatcher(
            {"webhook": sender}, BOX, self.outcomes.append, policy, queue_size, sleep=sleep, rand=lambda: 1.0
        )


def test_the_back_off_doubles_from_the_base_respects_retry_after_and_is_capped() -> None:
    p = RetryPolicy(attempts=8, base_s=2, max_s=60, jitter=0)
    assert [p.delay(n) for n in range(1, 7)] == [2, 4, 8, 16, 32, 60]
    assert (
        p.delay(1, asked=30) == 30 and p.delay(3, asked=1) == 8
    )  # the receiver's wait, never less than ours
    assert p.delay(2, asked=10_000) == 60
    jittered = RetryPolicy(base_s=2, max_s=60, jitter=0.1)
    assert jittered.delay(1, rand=0.0) == 2 and jittered.delay(1, rand=1.0) == 2.2


async def test_a_failing_attempt_is_retried_with_back_off_until_it_is_sent() -> None:
    sender = Scripted(DeliveryError("HTTP 503"), DeliveryError("HTTP 503"), None)
    h = Harness(sender)
    out = await h.d.deliver(channel(1), alert())
    assert (out.status, out.attempts, out.error) == ("sent", 3, None)
    assert h.waits == [2, 4] and len(sender.calls) == 3
    assert h.outcomes == [out]


async def test_after_its_last_attempt_a_delivery_fails_with_the_last_error() -> None:
    sender = Scripted(*[DeliveryError("timed out")] * 10)
    h = Harness(sender, RetryPolicy(attempts=4, base_s=1, max_s=3, jitter=0))
    out = await h.d.deliver(channel(1), alert())
    assert (out.status, out.attempts, out.error) == ("failed", 4, "timed out")
    assert h.waits == [1, 2, 3]


async def test_a_refusal_that_cannot_change_is_not_retried() -> None:
    sender = Scripted(DeliveryError("Telegram refused the message: chat not found", retry=False))
    h = Harness(sender)
    out = await h.d.deliver(channel(1), alert())
    assert (out.status, out.attempts) == ("failed", 1) and h.waits == []


async def test_a_stored_error_never_holds_the_channels_secrets() -> None:
    token = "123456:AAE-secret-token-0123456789"
    sender = Scripted(DeliveryError(f"https://api.telegram.org/bot{token}/sendMessage said 401", retry=False))
    h = Harness(sender)
    out = await h.d.deliver(channel(1, "webhook", {"bot_token": token}), alert())
    assert out.error is not None and token not in out.error and "***" in out.error


async def test_a_sender_bug_is_retried_and_reported_without_its_traceback() -> None:
    sender = Scripted(RuntimeError("boom"), None)  # type: ignore[arg-type]
    h = Harness(sender)
    out = await h.d.deliver(channel(1), alert())
    assert (out.status, out.attempts) == ("sent", 2)


async def test_a_full_queue_drops_its_oldest_alert_and_says_so() -> None:
    gate = asyncio.Event()
    sender = Scripted(hang=gate)
    h = Harness(sender, queue_size=2)
    for n in range(4):  # the first is in flight (hanging); 1 and 2 wait; 3 pushes 1 out
        h.d.submit(channel(1), alert(n))
        await asyncio.sleep(0)
    gate.set()
    await h.d.drain(5)
    dropped = [o for o in h.outcomes if o.status == "dropped"]
    assert [o.alert.title for o in dropped] == ["alert 1"] and "dropped" in (dropped[0].error or "")
    assert [t for _, t in sender.calls] == ["alert 0", "alert 2", "alert 3"]  # in order, none twice


async def test_a_channel_that_hangs_holds_up_no_other_channel() -> None:
    gate = asyncio.Event()
    sender = Scripted(hang=gate)
    h = Harness(sender)
    h.d.submit(channel(1), alert(1))  # hangs until the gate opens
    for n in range(5):
        h.d.submit(channel(2), alert(n))
    for _ in range(100):
        if sum(o.channel.id == 2 for o in h.outcomes) == 5:
            break
        await asyncio.sleep(0.01)
    assert [o.alert.title for o in h.outcomes if o.channel.id == 2] == [f"alert {n}" for n in range(5)]
    assert not any(o.channel.id == 1 for o in h.outcomes)
    gate.set()
    await h.d.drain(5)
    assert h.d.waiting() == 0 and any(o.channel.id == 1 and o.status == "sent" for o in h.outcomes)


async def test_a_secret_this_platform_cannot_read_fails_the_delivery_without_sending() -> None:
    sender = Scripted()
    h = Harness(sender)
    other = SecretBox([Fernet.generate_key().decode()])
    ch = Channel(
        id=9,
        owner_id=1,
        kind="webhook",
        name="x",
        events=frozenset(),
        enabled=True,
        config={},
        secret_enc=seal(other, {"url": "https://example.com/"}),
    )
    out = await h.d.deliver(ch, alert())
    assert out.status == "failed" and "cannot be read" in (out.error or "") and sender.calls == []


async def test_alerts_queued_for_a_deleted_channel_go_and_a_changed_one_sends_as_it_is_now() -> None:
    gate = asyncio.Event()
    sender = Scripted(hang=gate, hanging=frozenset({1, 2}))
    h = Harness(sender)
    for n in range(3):
        h.d.submit(channel(1), alert(n))  # the first of each hangs in flight, two wait
        h.d.submit(channel(2), alert(10 + n))
    await asyncio.sleep(0)
    renamed = Channel(
        id=2,
        owner_id=1,
        kind="webhook",
        name="renamed",
        events=frozenset({"fill"}),
        enabled=True,
        config={},
        secret_enc=seal(BOX, {"url": "https://example.com/new"}),
    )
    assert h.d.refresh(1, {2: renamed}) == 2  # channel 1 was deleted: its two waiting alerts go
    assert h.d.refresh(99, {}) == 0  # another user's change touches nothing of this one
    gate.set()
    await h.d.drain(5)
    assert [t for cid, t in sender.calls if cid == 1] == ["alert 0"]  # the one in flight finished
    assert {o.channel.name for o in h.outcomes if o.channel.id == 2 and o.alert.title != "alert 10"} == {
        "renamed"
    }
