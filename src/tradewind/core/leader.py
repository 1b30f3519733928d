"""Exactly one active core: leader election through a NATS key-value bucket with a TTL.

The leader holds the key ``core`` and rewrites it every ``ttl/3`` seconds; if it dies, the key ages out
and a standby takes over. A database lock would tie failover to the database's health; NATS is
already what core cannot work without, and JetStream's durable consumer keeps the stream position
across the change of leader.

The leader counts its lease from the moment it *sent* its last successful write (the server stored it
later, so the key cannot lapse before ``sent + ttl``) and steps down ``ttl/6`` before that, whether or
not its renewal is still waiting for an answer: a leader cut off from NATS has stopped acting before a
standby can have taken the lease. Renewal runs in a task of its own, so a slow start as the leader
(assignments and candle windows loaded from the database) never lets the lease lapse.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)
BUCKET = "tradewind_leader"
KEY = "core"


class LeaderElection:
    def __init__(self, js: JetStreamContext, ttl_s: float = 6.0) -> None:
        self.js = js
        self.ttl_s = ttl_s
        self.margin_s = ttl_s / 6
        self.identity = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.is_leader = False
        self._revision = 0

    async def _kv(self) -> KeyValue:
        try:
            return await self.js.key_value(BUCKET)
        except (BucketNotFoundError, NotFoundError):
            return await self.js.create_key_value(KeyValueConfig(bucket=BUCKET, ttl=self.ttl_s, history=1))

    async def run(
        self, on_elected: Callable[[], Awaitable[None]], on_deposed: Callable[[], Awaitable[None]]
    ) -> None:
        """Campaign forever; call ``on_elected`` on winning and ``on_deposed`` once the lease is lost."""
        while True:
            kv, valid_until = await self._win()
            self.is_leader = True
            log.info("core: %s is the leader", self.identity)
            lost = asyncio.Event()
            keeper = asyncio.create_task(self._keep(kv, valid_until, lost), name="core-lease")
            failed = False
            try:
                try:
                    await on_elected()
                except Exception:
                    log.exception("core: starting as the leader failed")
                    failed = True
                else:
                    await lost.wait()
            finally:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)
            await on_deposed()
            if failed:
                # Could not start (the database is not ready, say): give the lease back, try later.
                await self.resign()
                await asyncio.sleep(self.ttl_s / 3)
            self.is_leader = False

    async def _win(self) -> tuple[KeyValue, float]:
        """Campaign until this instance holds the key; returns the bucket and when the lease may lapse."""
        loop = asyncio.get_running_loop()
        kv: KeyValue | None = None
        while True:
            sent = loop.time()
            try:
                kv = kv or await self._kv()
                self._revision = await kv.create(KEY, self.identity.encode())
                return kv, sent + self.ttl_s - self.margin_s
            except KeyWrongLastSequenceError:
                pass  # another core holds the lease
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS restarting: keep campaigning
                log.warning("core: leader election: %s", exc)
            await asyncio.sleep(self.ttl_s / 3)

    async def _keep(self, kv: KeyValue, valid_until: float, lost: asyncio.Event) -> None:
        """Renew the lease until it cannot be renewed in time, then set ``lost``."""
        loop = asyncio.get_running_loop()
        wait = self.ttl_s / 3
        while True:
            await asyncio.sleep(max(0.0, min(wait, valid_until - loop.time())))
            sent = loop.time()
            if sent >= valid_until:
                log.warning("core: %s could not renew its lease in time; stepping down", self.identity)
                break
            try:
                self._revision = await asyncio.wait_for(
                    kv.update(KEY, self.identity.encode(), last=self._revision), valid_until - sent
                )
                valid_until, wait = sent + self.ttl_s - self.margin_s, self.ttl_s / 3
            except KeyWrongLastSequenceError:
                log.warning("core: %s lost the leadership", self.identity)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a timeout, NATS restarting: try again soon, within the lease
                log.warning("core: renewing the leader lease: %s", exc or type(exc).__name__)
                wait = self.ttl_s / 12
        lost.set()

    async def resign(self) -> None:
        """Give the lease back at once, if it is still this instance's (never delete a successor's)."""
        if self.is_leader:
            try:
                kv = await self._kv()
                await kv.delete(KEY, last=self._revision)
            except Exception:
                pass
            self.is_leader = False
