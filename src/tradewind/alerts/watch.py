"""Exchange connections, seen from the market data: an exchange whose adapter published candles and then
publishes none for ``silence_s`` is disconnected (its link to the venue, or the exchange component itself,
is down); its next candle says it is back.

Watching what every adapter already publishes covers every venue and every way of going down (a dead
socket, a crashed process, a stalled poll) without a hook in each adapter. An exchange never heard from
since this component started is not watched.
"""

from __future__ import annotations


class ExchangeWatch:
    def __init__(self, silence_s: float) -> None:
        self.silence_s = silence_s
        self.last: dict[str, float] = {}  # exchange -> when its last candle came (s)
        self.down: set[str] = set()

    def seen(self, exchange: str, now: float) -> float | None:
        """A candle of ``exchange`` at ``now``; if it was down, how long it had been silent (it is back)."""
        before = self.last.get(exchange)
        self.last[exchange] = now
        if exchange in self.down:
            self.down.discard(exchange)
            return now - before if before is not None else 0.0
        return None

    def silent(self, now: float) -> list[tuple[str, float]]:
        """The exchanges that have just gone silent, each with how long it has been."""
        gone = [
            (x, now - t) for x, t in self.last.items() if x not in self.down and now - t >= self.silence_s
        ]
        self.down.update(x for x, _ in gone)
        return gone
