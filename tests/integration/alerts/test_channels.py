"""Alert channels through the API, each one receiving a real alert on its local server: a signed webhook for
a pause, Telegram for the kill switch, test alerts on demand; what the API shows (never a secret) and who
sees what (nobody else's channels, nobody else's alerts)."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from tradewind.alerts import signing
from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.storage.models import AlertChannel, AuditEntry

from .conftest import assignment
from .receivers import eventually

TOKEN = "123456789:AAE-test-token-abcdefghijklmnopqrstu"


async def test_a_pause_through_the_api_reaches_the_webhook_signed_with_the_secret_shown_once(
    api, alerts, webhook
) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("ann@example.com")
    r = await c.post(
        "/api/alerts/channels", json={"kind": "webhook", "url": webhook.url(), "events": ["paused"]}
    )
    assert r.status_code == 201, r.text
    channel = r.json()
    secret = channel["secret"]
    assert secret.startswith("whsec_") and channel["url"] == f"http://127.0.0.1:{webhook.port}/…"
    a = await assignment(c, name="SMA cross")

    assert (await c.post(f"/api/assignments/{a['id']}/pause")).status_code == 200
    await eventually(lambda: webhook.events("paused"), what="the pause at the webhook")
    (got,) = [r for r in webhook.received if r.json["event"] == "paused"]
    # The receiver checks the signature over the exact bytes it got, with the secret it was shown once.
    assert signing.verify(
        secret, got.headers[signing.TIMESTAMP_HEADER], got.body, got.headers[signing.SIGNATURE_HEADER]
    )
    assert (
        got.headers[signing.EVENT_HEADER] == "paused"
        and got.headers[signing.DELIVERY_HEADER] == got.json["id"]
    )
    body = got.json
    assert body["title"] == f"Paused: assignment #{a['id']} (SMA cross)"
    assert "paused by you" in body["text"] and "SMA cross on sim BTC/USD 1m" in body["text"]
    assert body["data"]["assignment_id"] == a["id"] and secret not in got.body.decode()

    # Pausing what is paused already is no news; the channel shows its delivery.
    await c.post(f"/api/assignments/{a['id']}/pause")

    async def shown() -> bool:
        ch = (await c.get(f"/api/alerts/channels/{channel['id']}")).json()
        return ch["delivered"] == 1 and ch["status"] == "ok"

    await eventually(shown, what="the delivery in the app")
    log = (await c.get(f"/api/alerts/channels/{channel['id']}/deliveries")).json()["items"]
    assert [(d["event"], d["status"], d["attempts"]) for d in log] == [("paused", "sent", 1)]
    assert len(webhook.events("paused")) == 1
    # The secret is never shown again, nor the URL's path (where a key may be).
    everything = json.dumps(
        [
            (await c.get("/api/alerts/channels")).json(),
            (await c.get(f"/api/alerts/channels/{channel['id']}")).json(),
        ]
    )
    assert secret not in everything and "k3y-in-the-path" not in everything


async def test_the_kill_switch_reaches_telegram_and_the_token_is_never_shown(
    api, alerts, telegram, sf
) -> None:  # type: ignore[no-untyped-def]
    telegram.tokens.add(TOKEN)
    telegram.chats.add("-100200300")
    c = await api.user("kim@example.com")
    r = await c.post(
        "/api/alerts/channels",
        json={
            "kind": "telegram",
            "name": "Ops chat",
            "bot_token": TOKEN,
            "chat_id": "-100200300",
            "events": ["kill_switch"],
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["bot_token_masked"] == "****rstu" and r.json()["secret"] is None
    await assignment(c)

    assert (await c.post("/api/killswitch")).status_code == 200
    await eventually(lambda: telegram.messages, what="the kill switch on Telegram")
    (msg,) = telegram.messages
    assert msg["chat_id"] == "-100200300" and msg["text"].startswith(
        "Kill switch engaged\n\nEvery assignment is paused (1 were running)"
    )
    await c.delete("/api/killswitch")
    await eventually(lambda: len(telegram.messages) == 2, what="the release")
    assert telegram.messages[1]["text"].startswith("Kill switch released")

    shown = json.dumps([(await c.get("/api/alerts/channels")).json(), (await c.get("/api/audit")).json()])
    assert TOKEN not in shown and TOKEN.split(":")[1] not in shown
    async with sf() as s:  # at rest: encrypted
        stored = (await s.execute(select(AlertChannel))).scalar_one()
        audit = [e.detail for e in (await s.execute(select(AuditEntry))).scalars()]
    assert TOKEN not in json.dumps(stored.config) + (stored.secret_enc or "") + json.dumps(audit)


async def test_a_refused_bot_token_is_not_retried_and_its_error_never_holds_the_token(
    api, alerts, telegram
) -> None:  # type: ignore[no-untyped-def]
    telegram.echo_token = True  # even an answer that repeats the token is stored without it
    c = await api.user("lou@example.com")
    ch = (
        await c.post("/api/alerts/channels", json={"kind": "telegram", "bot_token": TOKEN, "chat_id": "42"})
    ).json()
    r = await c.post(f"/api/alerts/channels/{ch['id']}/test")
    assert r.status_code == 200 and r.json()["status"] == "failed" and r.json()["attempts"] == 1
    assert r.json()["error"] == "Telegram refused the message: Unauthorized: ***"
    assert telegram.requests == 1

    async def failing() -> bool:
        return (await c.get(f"/api/alerts/channels/{ch['id']}")).json()["status"] == "failing"

    await eventually(failing, what="the failure in the app")
    shown = json.dumps(
        [
            (await c.get(f"/api/alerts/channels/{ch['id']}")).json(),
            (await c.get(f"/api/alerts/channels/{ch['id']}/deliveries")).json(),
        ]
    )
    assert TOKEN not in shown and "Unauthorized: ***" in shown


async def test_a_test_alert_goes_to_each_kind_of_channel_and_says_how_it_went(
    api, alerts, webhook, telegram, smtp, nc
) -> None:  # type: ignore[no-untyped-def]
    telegram.tokens.add(TOKEN)
    telegram.chats.add("7")
    c = await api.user("tess@example.com")
    me = (await c.get("/api/auth/me")).json()["id"]
    seen: list[m.UserEvent] = []

    async def hear(msg) -> None:  # type: ignore[no-untyped-def]
        seen.append(m.decode_user_event(msg.data))

    await nc.subscribe(subjects.user_events(me), cb=hear)
    ids = {}
    for body in (
        {"kind": "webhook", "url": webhook.url()},
        {"kind": "telegram", "bot_token": TOKEN, "chat_id": "7"},
        {"kind": "email", "to": "tess@example.com"},
        {"kind": "browser"},
    ):
        r = await c.post("/api/alerts/channels", json=body)
        assert r.status_code == 201, r.text
        ids[body["kind"]] = r.json()["id"]
    for kind, cid in ids.items():
        r = await c.post(f"/api/alerts/channels/{cid}/test")
        assert r.json() == {"status": "sent", "attempts": 1, "error": None}, kind
    assert webhook.events("test")[0]["title"] == "Test alert from tradewind"
    assert telegram.messages[0]["text"].startswith("Test alert from tradewind")
    await eventually(lambda: smtp.messages, what="the test e-mail")
    mail = smtp.messages[0]
    assert mail["Subject"] == "[tradewind] Test alert from tradewind" and mail["To"] == "tess@example.com"
    assert mail["From"] == "alerts@tradewind.test" and "it works" in mail.get_content()
    await eventually(
        lambda: [e for e in seen if isinstance(e, m.AlertEvent)], what="the alert in the browser's stream"
    )
    (browser,) = [e for e in seen if isinstance(e, m.AlertEvent)]
    assert browser.event == "test" and browser.channel_id == ids["browser"]

    webhook.status = 500
    r = await c.post(f"/api/alerts/channels/{ids['webhook']}/test")
    assert r.json()["status"] == "failed" and r.json()["error"].startswith(
        f"http://127.0.0.1:{webhook.port}/… answered HTTP 500"
    )


async def test_without_the_alerts_component_a_test_is_a_503_not_a_500(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("solo@example.com")
    ch = (await c.post("/api/alerts/channels", json={"kind": "browser"})).json()
    r = await c.post(f"/api/alerts/channels/{ch['id']}/test")
    assert r.status_code == 503 and "alerts component" in r.json()["detail"]


async def test_nobody_sees_or_receives_another_users_alerts(api, alerts, webhook, nc) -> None:  # type: ignore[no-untyped-def]
    from .receivers import WebhookReceiver

    other = await WebhookReceiver().start()
    try:
        alice, mallory = await api.user("alice@example.com"), await api.user("mallory@example.com")
        mine = (
            await alice.post("/api/alerts/channels", json={"kind": "webhook", "url": webhook.url()})
        ).json()
        theirs = (
            await mallory.post("/api/alerts/channels", json={"kind": "webhook", "url": other.url()})
        ).json()
        a = await assignment(alice)
        await assignment(mallory)
        for method, path, body in [
            ("GET", "", None),
            ("PATCH", "", {"name": "mine now"}),
            ("POST", "/test", None),
            ("POST", "/secret", None),
            ("GET", "/deliveries", None),
            ("DELETE", "", None),
        ]:
            r = await mallory.request(method, f"/api/alerts/channels/{mine['id']}{path}", json=body)
            assert r.status_code == 404, (method, path, r.text)
        assert [ch["id"] for ch in (await mallory.get("/api/alerts/channels")).json()["items"]] == [
            theirs["id"]
        ]

        await alice.post(f"/api/assignments/{a['id']}/pause")
        await eventually(lambda: webhook.events("paused"), what="alice's alert")
        await asyncio.sleep(0.5)
        assert other.received == [] and len(webhook.events("test")) == 0  # mallory's test found nothing
        assert (await alice.get(f"/api/alerts/channels/{mine['id']}")).json()["name"] == "Webhook"
    finally:
        await other.stop()


async def test_bad_input_is_a_clear_4xx(api) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("val@example.com")
    cases = [
        ({"kind": "webhook"}, 422, "url", "needs url"),
        ({"kind": "webhook", "url": "ftp://example.com/x"}, 422, "url", "http"),
        ({"kind": "webhook", "url": "https://example.com/", "chat_id": "1"}, 422, "chat_id", "no chat_id"),
        ({"kind": "telegram", "bot_token": "nope", "chat_id": "1"}, 422, "bot_token", "pattern"),
        ({"kind": "telegram", "bot_token": TOKEN}, 422, "chat_id", "needs chat_id"),
        ({"kind": "email", "to": "not an address"}, 422, "to", "email"),
        ({"kind": "email", "to": "a@example.com", "smtp_password": "x"}, 422, "smtp_password", "smtp_host"),
        ({"kind": "webhook", "url": "https://example.com/", "events": []}, 422, "events", "at least one"),
        (
            {"kind": "webhook", "url": "https://example.com/", "events": ["everything"]},
            422,
            "events.0",
            "Input should be",
        ),
        ({"kind": "pigeon"}, 422, "kind", "Input should be"),
        ({"kind": "browser", "colour": "red"}, 422, "colour", "unknown field"),
    ]
    for body, status, field, words in cases:
        r = await c.post("/api/alerts/channels", json=body)
        assert r.status_code == status, (body, r.text)
        assert any(e["field"] == field and words in e["message"] for e in r.json()["errors"]), (
            body,
            r.json(),
        )
    assert (await c.post("/api/alerts/channels", json={"kind": "browser"})).status_code == 201
    r = await c.post("/api/alerts/channels", json={"kind": "browser"})
    assert r.status_code == 409 and "already" in r.json()["detail"]
    ch = (
        await c.post("/api/alerts/channels", json={"kind": "webhook", "url": "https://example.com/h"})
    ).json()
    r = await c.patch(f"/api/alerts/channels/{ch['id']}", json={"url": None})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "url"
    r = await c.post(
        f"/api/alerts/channels/{(await c.get('/api/alerts/channels')).json()['items'][-1]['id']}/secret"
    )
    assert r.status_code == 409  # the browser channel has no secret
    assert (await c.get("/api/alerts/channels/99999")).status_code == 404


async def test_a_webhooks_secret_can_be_replaced_and_the_old_one_no_longer_verifies(
    api, alerts, webhook
) -> None:  # type: ignore[no-untyped-def]
    c = await api.user("rot@example.com")
    ch = (await c.post("/api/alerts/channels", json={"kind": "webhook", "url": webhook.url()})).json()
    new = (await c.post(f"/api/alerts/channels/{ch['id']}/secret")).json()["secret"]
    assert new != ch["secret"]
    await c.post(f"/api/alerts/channels/{ch['id']}/test")
    got = webhook.received[-1]
    ts, sig = got.headers[signing.TIMESTAMP_HEADER], got.headers[signing.SIGNATURE_HEADER]
    assert signing.verify(new, ts, got.body, sig) and not signing.verify(ch["secret"], ts, got.body, sig)


async def test_a_shared_platform_refuses_webhooks_to_its_own_network(tmp_path, sf, box) -> None:  # type: ignore[no-untyped-def]
    from tradewind.config import Settings
    from tradewind.web.app import create_app

    from .conftest import Api

    settings = Settings(
        data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}", mode="distributed"
    )
    c = await Api(create_app(settings, sf, None, box)).user("shared@example.com")
    for url in ("http://127.0.0.1:9000/metrics", "http://169.254.169.254/latest", "http://localhost/"):
        r = await c.post("/api/alerts/channels", json={"kind": "webhook", "url": url})
        assert r.status_code == 422 and "public addresses only" in r.json()["detail"], url
    r = await c.post(
        "/api/alerts/channels", json={"kind": "email", "to": "x@example.com", "smtp_host": "10.0.0.8"}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "smtp_host"


async def test_rotating_the_secret_key_re_encrypts_the_channels_secrets_too(api, sf, box) -> None:  # type: ignore[no-untyped-def]
    from cryptography.fernet import Fernet

    from tradewind.alerts.channels import unseal
    from tradewind.config import ConfigError
    from tradewind.secrets import SecretBox, reencrypt_stored_keys

    from .conftest import KEY

    c = await api.user("rota@example.com")
    await c.post("/api/alerts/channels", json={"kind": "telegram", "bot_token": TOKEN, "chat_id": "5"})
    new = Fernet.generate_key().decode()
    await reencrypt_stored_keys(sf, SecretBox([new, KEY]))  # the new key first, the old one after it
    async with sf() as s:
        sealed = (await s.execute(select(AlertChannel.secret_enc))).scalar_one()
    assert unseal(SecretBox([new]), sealed) == {"bot_token": TOKEN}  # the old key can go now
    with pytest.raises(ConfigError):
        unseal(box, sealed)  # the old key alone no longer opens it
