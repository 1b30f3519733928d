"""The live events as typed structs: what producers publish on the bus is what the browser's socket sends,
flat and tagged by ``type``, with the fields only some events of a kind carry left out of the others."""

from __future__ import annotations

import json

import msgspec
import pytest

from tradewind.bus import messages as m
from tradewind.web.stream import CandleEvent, StreamEvent, SubscribedEvent

FILL = m.FillEvent(
    id=7,
    assignment_id=3,
    client_order_id="a3-60000-long",
    symbol="BTC/USD",
    side="buy",
    amount="0.5",
    status="filled",
    order_type="market",
    filled="0.5",
    price="100.25",
    fee="0.05",
    reason=None,
    exit_reason=None,
)


def as_browser_gets_it(event: m.LiveEvent) -> object:
    """Over the bus (msgpack) and out of the socket (JSON), as web.stream does it."""
    return json.loads(msgspec.json.encode(m.decode_user_event(m.encode(event))))


def test_a_fill_reaches_the_browser_flat_with_its_kind_as_type() -> None:
    assert as_browser_gets_it(FILL) == {
        "type": "fill",
        "id": 7,
        "assignment_id": 3,
        "client_order_id": "a3-60000-long",
        "symbol": "BTC/USD",
        "side": "buy",
        "amount": "0.5",
        "status": "filled",
        "order_type": "market",
        "filled": "0.5",
        "price": "100.25",
        "fee": "0.05",
        "reason": None,
        "exit_reason": None,
    }


def test_each_kind_comes_back_as_its_own_struct() -> None:
    events: list[m.LiveEvent] = [
        FILL,
        m.OrderEvent(**{**msgspec.structs.asdict(FILL), "status": "open"}),
        m.EvaluationEvent(
            assignment_id=3,
            exchange="sim",
            symbol="BTC/USD",
            tf="1m",
            candle_time=60_000,
            status="ok",
            position="long",
            note=None,
            error=None,
            duration_ms=0.5,
        ),
        m.PausedEvent(assignment_id=3, reason="paused by you", by="you"),
        m.KillSwitchEvent(engaged=True, paused_assignments=2, cancel_requests=1, flatten=False),
        m.LossLimitEvent(trader_id=1, trader_name="paper", loss="12.50", limit="10", paused=2),
        m.AlertEvent(
            id="x", event="fill", time="2024-01-01T00:00:00+00:00", title="t", text="", data={}, channel_id=1
        ),
        m.AlertFailedEvent(
            channel_id=1,
            channel="hook",
            kind="webhook",
            event="fill",
            title="t",
            error="HTTP 500",
            attempts=3,
        ),
    ]
    for event in events:
        assert m.decode_user_event(m.encode(event)) == event


def test_what_only_some_events_of_a_kind_carry_is_left_out_of_the_others() -> None:
    assert as_browser_gets_it(m.KillSwitchEvent(engaged=False)) == {"type": "kill_switch", "engaged": False}
    by_you = as_browser_gets_it(m.PausedEvent(assignment_id=3, reason="paused by you", by="you"))
    assert by_you == {"type": "paused", "assignment_id": 3, "reason": "paused by you", "by": "you"}
    on_candle = as_browser_gets_it(
        m.EvaluationEvent(
            assignment_id=3,
            exchange="sim",
            symbol="BTC/USD",
            tf="1m",
            candle_time=60_000,
            status="ok",
            position=None,
            note=None,
            error=None,
            duration_ms=0.5,
        )
    )
    assert isinstance(on_candle, dict) and "trigger" not in on_candle and "logs" not in on_candle


def test_an_event_of_an_unknown_kind_or_with_an_unknown_order_status_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        m.decode_user_event(msgspec.msgpack.encode({"type": "gossip", "assignment_id": 1}))
    with pytest.raises(msgspec.ValidationError, match="status"):
        m.decode_user_event(msgspec.msgpack.encode({**msgspec.to_builtins(FILL), "status": "half"}))


def test_the_sockets_own_frames_are_stream_events_too() -> None:
    frames = msgspec.json.Decoder(StreamEvent)
    candle = CandleEvent(
        market_id=1,
        exchange="sim",
        symbol="BTC/USD",
        tf="1m",
        time=60_000,
        open=1.0,
        high=2.0,
        low=0.5,
        close=1.5,
        volume=3.0,
        closed=True,
    )
    assert frames.decode(msgspec.json.encode(candle)) == candle
    assert json.loads(msgspec.json.encode(SubscribedEvent(markets=None))) == {
        "type": "subscribed",
        "markets": None,
    }
