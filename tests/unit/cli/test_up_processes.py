"""`tradewind up` as a user runs it: the web server in child processes of its own (two by default), stopped
with the rest by one Ctrl-C, and /metrics still showing the whole platform."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_up_serves_from_child_processes_and_one_sigint_stops_them_all(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env |= {
        "TRADEWIND_DATA_DIR": str(tmp_path / "data"),
        "TRADEWIND_HISTORY_DAYS": "1",
        "TRADEWIND_SIM_SPEED": "60",
        "TRADEWIND_WEB_PROCESSES": "2",
    }
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "tradewind.cli", "up", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "tradewind is up" not in log.read_text():
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        webs = [int(pid) for pid in re.findall(r"web server started \(process (\d+)\)", log.read_text())]
        assert len(set(webs)) == 2, log.read_text()  # TRADEWIND_WEB_PROCESSES
        assert all(web != up.pid and parent_of(web) == up.pid for web in webs)

        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/api/health", timeout=10).json() == {
            "status": "ok",
            "database": "ok",
            "nats": "ok",
        }
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        assert "tradewind_http_requests_total" in metrics  # the web server's own
        assert "tradewind_core_candles_total" in metrics  # core's, from the parent

        # A terminal's Ctrl-C reaches every process of the group: the web servers leave it to their parent,
        # which stops them in order.
        for web in webs:
            os.kill(web, signal.SIGINT)
        time.sleep(1)
        assert httpx.get(f"{base}/api/health", timeout=10).status_code == 200
        assert all(parent_of(web) == up.pid for web in webs)

        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, log.read_text()
        for web in webs:
            assert not os.path.exists(f"/proc/{web}"), "a web server outlived tradewind up"
        assert "Traceback" not in log.read_text()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(10)
