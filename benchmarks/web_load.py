"""The web side under load while the platform trades (issue 17).

Starts the embedded platform as `tradewind up` does (embedded NATS, SQLite, the sim at one 1m candle a
second, eval workers and core in this process, the web server in ``--web-processes`` child processes of its
own sharing the port: ``runtime.WebProcesses``; ``--web-inline`` serves the web app in this process instead,
the layout before 2026-12-04), adds ``--assignments`` assignments that order on every candle, and measures core's tick ->
order latency twice over the same number of candles: once quiet, once while

- Locust (benchmarks/locustfile.py, in a process of its own) runs ``--users`` users who sign up, log in
  and browse: strategies, assignments, markets, candles, orders, positions, and now and then write a
  strategy and run a one-day backtest of it, one to three seconds between clicks;
- ``--sockets`` live-stream websockets (another process, 25 sockets per user) each subscribed to the
  market's 1m candles, counting the candles they receive.

Prints the API's p50/p99 per request kind and in all (sign-up and log-in apart: they hash a password on
purpose), failures, whether every socket received every candle published while all were connected, the
trading p50/p99 quiet and under load, and the CPU each process tree used during the loaded run (the
platform, its web server's processes, Locust, the sockets: the load generator shares the machine's cores).
Needs Locust: `.venv/bin/pip install -e '.[bench]'`, or any Locust with ``--locust PATH``.

    .venv/bin/python benchmarks/web_load.py [--users 200] [--sockets 500] [--assignments 1000] [--candles 30]
        [--web-processes N] [--locust /tmp/tw/locust/bin/locust]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from tradewind.bench.latency import SYMBOLS, evaluated, measure_orders, percentile, populate
from tradewind.bus import messages as m
from tradewind.bus import subjects
from tradewind.bus.connection import connect
from tradewind.config import load_settings
from tradewind.runtime import (
    Stack,
    launch_web_process,
    listen,
    open_database,
    open_nats,
    settle_heap,
    start_core,
    start_eval,
    start_exchange,
    start_web,
)
from tradewind.secrets import load_secret_box
from tradewind.storage.models import Market

HERE = Path(__file__).resolve().parent
PASSWORD = "correct horse battery staple"
AUTH = {"register", "login"}


# -- the websockets' process ------------------------------------------------------------------------------
async def sockets_main(base: str, n: int, market_id: int, seconds: float, out: Path) -> None:
    """``n`` sockets (25 per user), each subscribed to the market's 1m candles for ``seconds`` once all are
    connected; writes what each received."""
    import websockets

    users = max(1, n // 25)
    tokens: list[str] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        for i in range(users):
            email = f"socket-{os.getpid()}-{i}@example.com"
            await c.post("/api/auth/register", json={"email": email, "password": PASSWORD})
            r = await c.post("/api/auth/login", json={"email": email, "password": PASSWORD})
            tokens.append(r.json()["token"])
    ws_base = base.replace("http://", "ws://")
    seen: list[list[int]] = [[] for _ in range(n)]
    errors: list[str] = []
    connected = 0
    all_in = asyncio.Event()
    stop = asyncio.Event()
    gate = asyncio.Semaphore(20)

    async def one(i: int) -> None:
        nonlocal connected
        try:
            async with gate:  # connected a few at a time, as browsers arrive, not 500 handshakes at once
                ws = await websockets.connect(
                    f"{ws_base}/api/stream?token={tokens[i % users]}", max_queue=None, open_timeout=60
                )
            async with ws:
                await ws.send(json.dumps({"subscribe": [{"market_id": market_id, "timeframe": "1m"}]}))
                while json.loads(await ws.recv()).get("type") != "subscribed":
                    pass
                connected += 1
                if connected == n:
                    all_in.set()
                while not stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                    except TimeoutError:
                        continue
                    ev = json.loads(raw)
                    if (
                        ev.get("type") == "candle"
                        and ev.get("closed")
                        and ev.get("tf") == "1m"
                        and all_in.is_set()
                    ):
                        seen[i].append(int(ev["time"]))
        except Exception as exc:  # a socket refused or dropped is a failure of the run, reported
            errors.append(f"socket {i}: {type(exc).__name__}: {exc}")
            stop.set()
            all_in.set()

    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    await asyncio.wait_for(all_in.wait(), timeout=120)
    started = time.time()
    print(json.dumps({"ready": started}), flush=True)
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    out.write_text(json.dumps({"seen": seen, "errors": errors, "connected": connected}))  # noqa: ASYNC240  (once, at the end)


def check_sockets(report: dict[str, Any]) -> tuple[int, int, list[str]]:
    """(candles every socket should have had, sockets that missed any, problems). The candles expected are
    those any socket received, less the first and last (a socket may read them just before it stops); one
    minute missing between them all would be a candle lost before the sockets."""
    problems = list(report["errors"])
    union = sorted({t for s in report["seen"] for t in s})
    inner = union[1:-1]
    if inner and (inner[-1] - inner[0]) // 60_000 + 1 != len(inner):
        problems.append(
            f"candles missing for every socket: {len(inner)} of {(inner[-1] - inner[0]) // 60_000 + 1}"
        )
    expected = set(inner)
    short = sum(1 for s in report["seen"] if not expected <= set(s))
    dupes = sum(1 for s in report["seen"] if len(s) != len(set(s)))
    if dupes:
        problems.append(f"{dupes} sockets received a candle twice")
    return len(expected), short, problems


# -- CPU per process tree -------------------------------------------------------------------------------------
def _procs() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) of every process (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    return out


def tree_cpu(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process and its descendants, each process counted under the nearest
    named ancestor (the platform's tree less the web server's, Locust's and the sockets')."""
    procs = _procs()
    owner_of = {pid: name for name, pid in roots.items()}
    totals = dict.fromkeys(roots, 0.0)
    for pid, (_, cpu) in procs.items():
        p, seen = pid, 0
        while p not in owner_of and p in procs and seen < 64:
            p, seen = procs[p][0], seen + 1
        if p in owner_of:
            totals[owner_of[p]] += cpu
    return totals


# -- Locust's figures -------------------------------------------------------------------------------------
def locust_stats(prefix: Path) -> dict[str, dict[str, float]]:
    rows = {}
    with open(f"{prefix}_stats.csv") as f:
        for r in csv.DictReader(f):
            rows[r["Name"]] = {
                "requests": float(r["Request Count"]), "failures": float(r["Failure Count"]),
                "p50": float(r["50%"]), "p99": float(r["99%"]), "rps": float(r["Requests/s"]),
            }  # fmt: skip
    return rows


def browsing_percentiles(times: list[tuple[str, float, bool]]) -> tuple[float, float, int]:
    """p50 and p99 (ms) of every request but sign-up and log-in, and how many there were."""
    ms = [t for name, t, _ in times if name not in AUTH]
    return statistics.median(ms) if ms else float("nan"), percentile(ms, 0.99), len(ms)


# -- the run ----------------------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory(prefix="tradewind-webload-")
    data = Path(tmp.name)
    web_processes = {"web_processes": args.web_processes} if args.web_processes else {}
    settings = load_settings(
        data_dir=data, sim_symbols=SYMBOLS[:1], eval_workers=args.workers, sim_paper_cash="1000000000",
        exchanges=["sim"], sim_speed=args.speed, history_days=1, **web_processes,
    )  # fmt: skip
    stack = Stack()
    out: dict[str, Any] = {}
    try:
        url = await open_nats(settings, stack)
        sf = await open_database(settings, stack, migrate=True)
        for i in range(args.workers):
            await start_eval(settings, url, sf, stack, i)
        await start_core(settings, url, sf, stack)
        await start_exchange(settings, "sim", url, sf, stack)
        load_secret_box(settings)  # (made here first: the web server's process reads the same key file)
        sock = listen("127.0.0.1", 0)
        port = int(sock.getsockname()[1])
        roots = {"platform": os.getpid()}
        if args.web_inline:
            await start_web(settings, url, sf, stack, "127.0.0.1", port, sock)
        else:
            web = launch_web_process(settings, url, stack, "127.0.0.1", port, sock)
            await web.ready()
            roots |= {f"web{i}": pid for i, pid in enumerate(web.pids)}
        base = f"http://127.0.0.1:{port}"
        nc = await connect(url, "bench")
        stack.stoppers.append(nc.drain)
        settle_heap()
        async with sf() as s:
            market_ids = list((await s.execute(select(Market.id).where(Market.exchange == "sim"))).scalars())
        ids = await populate(sf, args.assignments, market_ids, f"web-{time.time_ns()}")
        await nc.publish(subjects.ASSIGNMENTS_CHANGED, m.encode(m.AssignmentsChanged()))
        await evaluated(sf, ids[0])
        say(f"{args.assignments} assignments trading; quiet run over {args.candles} candles")
        cpu_q0, tq = tree_cpu(roots), time.monotonic()
        quiet = await measure_orders(sf, ids, market_ids, 3, args.candles, args.speed)
        cpu_q1, elapsed_q = tree_cpu(roots), time.monotonic() - tq
        load_quiet = os.getloadavg()

        seconds = args.candles * 60 / args.speed + 30  # the measured candles, the ramp-up and the tail
        report = data / "sockets.json"
        sockets = subprocess.Popen(  # noqa: ASYNC220  (a spawn: returns at once)
            [sys.executable, __file__, "sockets", "--base", base, "--sockets", str(args.sockets),
             "--market", str(market_ids[0]), "--seconds", str(seconds), "--out", str(report)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        ready = await asyncio.to_thread(sockets.stdout.readline)  # type: ignore[union-attr]
        if not ready:
            raise RuntimeError("the sockets' process ended before all connected")
        say(f"{args.sockets} sockets connected; Locust: {args.users} users")
        prefix = data / "locust"
        locust = subprocess.Popen(  # noqa: ASYNC220  (a spawn: returns at once)
            [args.locust, "-f", str(HERE / "locustfile.py"), "--headless",
             "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{int(seconds)}s", "--host", base,
             "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"],
            env={**os.environ, "TW_LOAD_MARKET": str(market_ids[0]), "TW_LOAD_TIMES": str(data / "times.json")},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        await asyncio.sleep(args.users / args.spawn_rate + 5)  # every user logged in and browsing
        say(f"loaded run over {args.candles} candles")
        roots |= {"locust": locust.pid, "sockets": sockets.pid}
        cpu0, t0 = tree_cpu(roots), time.monotonic()
        loaded = await measure_orders(sf, ids, market_ids, 1, args.candles, args.speed)
        cpu1, elapsed = tree_cpu(roots), time.monotonic() - t0
        load = os.getloadavg()
        served = [] if args.web_inline else [await requests_served(w) for w in web.children]
        _, locust_err = await asyncio.to_thread(locust.communicate)
        await asyncio.to_thread(sockets.wait)
        stats = locust_stats(prefix)
        got = json.loads(report.read_text())
        expected, short, problems = check_sockets(got)
        p50, p99, count = browsing_percentiles(json.loads((data / "times.json").read_text()))
        out = {
            "assignments": args.assignments, "users": args.users, "sockets": args.sockets,
            "api": {k: v for k, v in stats.items()},
            "api_requests_browsing": count, "api_p50_ms_browsing": round(p50, 1), "api_p99_ms_browsing": round(p99, 1),
            "api_failures": stats.get("Aggregated", {}).get("failures", float("nan")),
            "sockets_candles_expected": expected, "sockets_missing_some": short, "socket_problems": problems,
            "trading_quiet": summary(quiet.latencies), "trading_loaded": summary(loaded.latencies),
            "trading_loaded_p50_by_candle": by_candle(loaded.timed),
            "locust_stderr_tail": locust_err[-500:] if locust.returncode else "",
            "web_layout": "inline" if args.web_inline else f"{settings.web_processes} processes",
            "requests_by_web_process": served,
            "cores_used_quiet": {k: round((cpu_q1[k] - cpu_q0[k]) / elapsed_q, 2) for k in cpu_q0},
            "cores_used_loaded": {k: round((cpu1[k] - cpu0[k]) / elapsed, 2) for k in roots},
            "loadavg_after_quiet": [round(x, 2) for x in load_quiet],
            "loadavg_after_loaded": [round(x, 2) for x in load], "cpus": os.cpu_count(),
        }  # fmt: skip
        show(out, args)  # now: a platform that is slow to stop does not hold the figures back
    finally:
        await stack.close()
        tmp.cleanup()
    return out


async def requests_served(web: Any) -> int:
    """HTTP requests one web process has answered so far (from its own metrics)."""
    try:
        text = (await web.own_metrics()).decode()
    except Exception:
        return -1
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("tradewind_http_requests_total{")))  # fmt: skip


def by_candle(timed: list[tuple[int, float]]) -> list[float]:
    """The median latency of each candle's orders, in candle order: where in the run trading fell behind."""
    per: dict[int, list[float]] = {}
    for t, ms in timed:
        per.setdefault(t, []).append(ms)
    return [round(statistics.median(per[t])) for t in sorted(per)]


def summary(lat: list[float]) -> dict[str, float]:
    return {"orders": len(lat), "p50_ms": round(statistics.median(lat), 1) if lat else float("nan"),
            "p99_ms": round(percentile(lat, 0.99), 1)}  # fmt: skip


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "sockets":
        p = argparse.ArgumentParser()
        p.add_argument("sockets")
        p.add_argument("--base", required=True)
        p.add_argument("--sockets", dest="n", type=int, required=True)
        p.add_argument("--market", type=int, required=True)
        p.add_argument("--seconds", type=float, required=True)
        p.add_argument("--out", type=Path, required=True)
        a = p.parse_args()
        asyncio.run(sockets_main(a.base, a.n, a.market, a.seconds, a.out))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--spawn-rate", type=float, default=20)
    p.add_argument("--sockets", type=int, default=500)
    p.add_argument("--assignments", type=int, default=1000)
    p.add_argument("--workers", type=int, default=1, help="eval workers")
    p.add_argument("--candles", type=int, default=30, help="candles measured, quiet and under load")
    p.add_argument("--speed", type=float, default=60.0, help="the sim's speed: 60 = a 1m candle a second")
    p.add_argument(
        "--web-inline", action="store_true", help="the web server in this process (the old layout)"
    )
    p.add_argument(
        "--web-processes", type=int, default=0, help="the web server's processes (default: the setting's)"
    )
    p.add_argument("--locust", default=str(Path(sys.executable).with_name("locust")),
                   help="the locust command (default: the one next to this Python)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    asyncio.run(run(args))


def show(out: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(out, indent=1), flush=True)
        return
    print(
        f"web load: {args.users} Locust users, {args.sockets} sockets, {args.assignments} assignments trading"
    )
    print(f"{'request':<34}{'count':>8}{'fail':>6}{'p50 ms':>8}{'p99 ms':>8}")
    for name, v in sorted(out["api"].items()):
        print(f"{name:<34}{v['requests']:>8.0f}{v['failures']:>6.0f}{v['p50']:>8.0f}{v['p99']:>8.0f}")
    print(f"API while browsing (sign-up and log-in apart, {out['api_requests_browsing']} requests): "
          f"p50 {out['api_p50_ms_browsing']} ms, p99 {out['api_p99_ms_browsing']} ms; failures: {out['api_failures']:.0f}")  # fmt: skip
    print(f"sockets: {args.sockets}, each expected {out['sockets_candles_expected']} candles; "
          f"{out['sockets_missing_some']} missed some; problems: {out['socket_problems'] or 'none'}")  # fmt: skip
    print(f"trading p50 by candle under load: {out['trading_loaded_p50_by_candle']}")
    q, l_ = out["trading_quiet"], out["trading_loaded"]
    print(f"trading tick->order: quiet p50 {q['p50_ms']} / p99 {q['p99_ms']} ms ({q['orders']} orders); "
          f"under load p50 {l_['p50_ms']} / p99 {l_['p99_ms']} ms ({l_['orders']} orders)")  # fmt: skip
    for phase in ("quiet", "loaded"):
        used = out[f"cores_used_{phase}"]
        webs = {k: v for k, v in used.items() if k.startswith("web")}
        if len(webs) > 1:
            used = {"web (all)": round(sum(webs.values()), 2), **used}
        cores = ", ".join(f"{k} {v}" for k, v in used.items())
        print(f"cores used, {phase} ({out['web_layout']} web server; {out['cpus']} CPUs, load average after "
              f"{' '.join(map(str, out[f'loadavg_after_{phase}']))}): {cores}")  # fmt: skip
    if out["requests_by_web_process"]:
        print(f"requests answered by each web process: {out['requests_by_web_process']}")
    if out["locust_stderr_tail"]:
        print("locust:", out["locust_stderr_tail"])
    sys.stdout.flush()


if __name__ == "__main__":
    main()
