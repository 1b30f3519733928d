"""Each Deployment's processes, run here the way its pod runs them: the manifest's command and arguments,
the ConfigMap and a Secret as the environment, the init container first. Their probes must answer on the
paths the manifests ask, and SIGTERM must end them within the pod's grace period.

Only what a pod on this machine cannot have is changed: NATS and the database are local, and the ports are
free ones (the manifests' port numbers are checked in test_manifests.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet

from tradewind.bus.embedded import EmbeddedNats

BASE = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "base"
BIN = Path(sys.executable).parent / "tradewind"

pytestmark = pytest.mark.e2e


def manifests() -> list[dict[str, Any]]:
    return [
        d
        for p in sorted(BASE.glob("*.yaml"))
        if p.name != "kustomization.yaml"
        for d in yaml.safe_load_all(p.read_text())
        if d
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod_env(config: dict[str, str], **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
    env.update(config)
    env.update(overrides)
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as fh:
        return subprocess.Popen(
            [str(BIN), *args], env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def wait_for(
    client: httpx.AsyncClient, url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args} exited with {proc.returncode}:\n{await asyncio.to_thread(tail, log)}")
        try:
            response = await client.get(url)
            if response.status_code == 200:
                return response
            if response.status_code in (404, 405):  # not starting up: the path is wrong
                pytest.fail(f"{url} answered {response.status_code}")
            last = response.status_code
        except httpx.TransportError as exc:
            last = exc
        await asyncio.sleep(0.1)
    pytest.fail(
        f"{url} did not answer 200 in {timeout} s (last: {last}):\n{await asyncio.to_thread(tail, log)}"
    )


async def test_every_component_started_as_its_pod_serves_its_probes_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    docs = manifests()
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    nats = EmbeddedNats(tmp_path / "nats")
    url = await nats.start()
    secret = {
        "TRADEWIND_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tradewind.db'}",
        "TRADEWIND_SECRET_KEY": Fernet.generate_key().decode(),
    }
    local = {
        "TRADEWIND_NATS_URL": url,
        "TRADEWIND_DATA_DIR": str(tmp_path / "data"),
        "TRADEWIND_HISTORY_DAYS": "0",
    }
    procs: list[tuple[dict[str, Any], subprocess.Popen[bytes], Path, int]] = []
    try:
        # The init containers' command, once (they are all the same `db upgrade`).
        inits = {
            tuple(c["args"])
            for d in deployments
            for c in d["spec"]["template"]["spec"].get("initContainers", [])
        }
        assert inits == {("db", "upgrade")}
        env = pod_env(config, **secret, **local)
        done = await asyncio.to_thread(
            subprocess.run, [str(BIN), "db", "upgrade"], env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr.decode()

        for d in deployments:
            (c,) = d["spec"]["template"]["spec"]["containers"]
            port = free_port()
            env = pod_env(
                config, **secret, **local, TRADEWIND_PORT=str(port), TRADEWIND_METRICS_PORT=str(port)
            )
            log = tmp_path / f"{d['metadata']['name']}.log"
            procs.append((d, await asyncio.to_thread(spawn, c["args"], env, log), log, port))

        async with httpx.AsyncClient(timeout=5) as client:
            for d, proc, log, port in procs:
                (c,) = d["spec"]["template"]["spec"]["containers"]
                for probe in ("readinessProbe", "livenessProbe"):
                    await wait_for(client, f"http://127.0.0.1:{port}{c[probe]['httpGet']['path']}", proc, log)
                metrics = await wait_for(client, f"http://127.0.0.1:{port}/metrics", proc, log)
                assert "process_cpu_seconds_total" in metrics.text

        for _, proc, _, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for d, proc, log, _ in procs:
            name, grace = (
                d["metadata"]["name"],
                d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
            )
            try:
                code = await asyncio.to_thread(proc.wait, grace)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"{name} outlived its {grace} s grace period:\n{await asyncio.to_thread(tail, log)}"
                )
            assert code == 0, f"{name} exited with {code}:\n{await asyncio.to_thread(tail, log)}"
    finally:
        for _, proc, _, _ in procs:
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)
        await nats.stop()
