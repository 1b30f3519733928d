"""A TCP proxy that tests put between a component and its database or NATS server, to take the link away."""

from __future__ import annotations

import asyncio
import contextlib


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to ``host:port``. ``cut()`` drops every connection and refuses new ones
    until ``up`` is set again; ``freeze()`` is a partition: connections stay open, no byte goes through."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5432) -> None:
        self.target = (host, port)
        self.up = True
        self.frozen = asyncio.Event()
        self.conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            r2, w2 = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.conns.update((writer, w2))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    if self.frozen.is_set():
                        await asyncio.Future()  # held until cut() aborts the connection
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, w2), pipe(r2, writer))
        self.conns.difference_update((writer, w2))

    def freeze(self) -> None:
        self.frozen.set()

    def cut(self) -> None:
        self.up = False
        for w in list(self.conns):
            w.transport.abort()

    async def close(self) -> None:
        self.cut()
        self.server.close()
