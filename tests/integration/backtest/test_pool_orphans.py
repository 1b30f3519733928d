"""A backtest worker's pool processes end with the eval process, even when it is killed."""

import os
import subprocess
import sys
import time

SCRIPT = """
import asyncio, os
from tradewind.backtest.worker import BacktestWorker
from tradewind.config import Settings

async def main():
    w = BacktestWorker(Settings(), nc=None, session_factory=None, processes=2)
    w._pool = w._new_pool()
    await asyncio.gather(*(asyncio.wrap_future(w._pool.submit(os.getpid)) for _ in range(4)))
    print(" ".join(str(p) for p in w._pool._processes), flush=True)
    os._exit(9)  # no stop(): as if the process were killed

if __name__ == "__main__":
    asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone too
        return f.read().split(") ", 1)[1][0] != "Z"


def test_pool_processes_exit_when_their_parent_dies(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "orphan.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60).stdout
    pids = [int(p) for p in out.split()]
    assert len(pids) == 2
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids), "a pool process outlived the eval process"
