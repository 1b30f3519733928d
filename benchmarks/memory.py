"""Memory of the embedded platform under load (issue 17): runs ``tradewind bench latency`` with the
arguments given and samples the resident memory of its process tree from /proc every ``--every``
seconds — the bench process (core, the sim exchange, the eval workers' front ends), each executor child
(the Lua states) and the embedded nats-server — then prints RSS over time, at the end of the warm-up and
at the end of the run, and the growth after the warm-up.

    .venv/bin/python benchmarks/memory.py --warmup 180 -- --assignments 1000 --candles 600 --window 100
    .venv/bin/python benchmarks/memory.py --warmup 60 -- --assignments 10000 --workers 2 --candle-interval 10 --candles 10

``--warmup`` counts from the moment the bench starts setting up its load (its "setting up" line). The
figures stop ``--read-s`` seconds before the bench prints its figures: then it reads every order back to
compute its percentiles (600,000 rows after 600 candles at 1,000), which is the bench's memory, not the
platform's. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _ppid_map() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _tree(root: int) -> list[int]:
    parents = _ppid_map()
    found, frontier = [root], [root]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier]
        found += frontier
    return found


def _rss_mb(pid: int) -> float | None:
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * PAGE_KB / 1024


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "bench"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if "nats-server" in cmd:
        return "nats"
    if "resource_tracker" in cmd:
        return "other"
    if "multiprocessing" in cmd:
        return "executor"
    return "other"


def sample(root: int) -> dict[str, float]:
    """MB by role; executors are summed, and ``executor_max`` is the largest one."""
    out = {"bench": 0.0, "executor": 0.0, "executor_max": 0.0, "nats": 0.0, "other": 0.0}
    for pid in _tree(root):
        rss = _rss_mb(pid)
        if rss is None:
            continue
        role = _role(pid, root)
        out[role] += rss
        if role == "executor":
            out["executor_max"] = max(out["executor_max"], rss)
    out["total"] = out["bench"] + out["executor"] + out["nats"] + out["other"]
    return {k: round(v, 1) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=180.0, help="seconds after setting up that are warm-up")
    ap.add_argument("--json", dest="json_path", type=Path, help="also write the samples here")
    ap.add_argument(
        "--read-s", type=float, default=15.0, help="seconds before the bench's figures left out (its read)"
    )
    ap.add_argument(
        "--exit-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for the bench to exit once it has printed its figures",
    )
    ap.add_argument("bench_args", nargs=argparse.REMAINDER, help="after --: `tradewind bench latency` args")
    args = ap.parse_args()
    bench_args = [a for a in args.bench_args if a != "--"]
    known = argparse.ArgumentParser(add_help=False)
    known.add_argument("--candles", type=int, default=20)
    known.add_argument("--candle-interval", type=float, default=1.0)
    bench, _ = known.parse_known_args(bench_args)
    # The longest the load can take once set up: its candles, the warm-up's 3, and room for the setup
    # itself (10,000 assignments took 2 minutes to get their first evaluation on a busy machine).
    longest_s = (bench.candles + 3) * bench.candle_interval + 600
    exe = Path(sys.executable).with_name("tradewind")
    proc = subprocess.Popen(
        [str(exe), "bench", "latency", *bench_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    setup_at: list[float] = []
    result_at: list[float] = []  # its "p50 ..." line: printed after it has read the orders back
    lines: list[str] = []

    def read_progress() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip())
            print(f"  bench: {line.rstrip()}", file=sys.stderr, flush=True)
            if "setting up" in line and not setup_at:
                setup_at.append(time.monotonic())
            if " p50 " in line and setup_at and not result_at:
                result_at.append(time.monotonic() - setup_at[0])

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    t0 = time.monotonic()
    samples: list[tuple[float, float | None, dict[str, float]]] = []
    hung = False
    while proc.poll() is None:
        s = sample(proc.pid)
        now = time.monotonic()
        since = now - setup_at[0] if setup_at else None
        samples.append((round(now - t0, 1), None if since is None else round(since, 1), s))
        if since is not None and since > (result_at[0] if result_at else longest_s) + args.exit_timeout:
            hung = True  # it has its figures (or never will): stop it rather than wait for ever
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            break
        time.sleep(args.every)
    out, _ = proc.communicate()
    reader.join(timeout=5)
    print(out)
    failed = ""
    if hung:
        failed = f"the bench was still running {args.exit_timeout:g} s after its figures: stopped"
    elif proc.returncode:
        failed = f"the bench failed ({proc.returncode})"
    # the last measured candle: before the bench read every order back (a few seconds at 100,000 rows)
    end_s = (result_at[0] if result_at else longest_s) - args.read_s
    loaded = [(since, s) for _, since, s in samples if since is not None and s["executor"] and since <= end_s]
    if not loaded:
        sys.exit(failed or "no sample under load")
    step = max(1, len(loaded) // 20)
    print(
        f"{'s under load':>12} {'bench MB':>9} {'executors MB':>13} {'largest':>8} {'nats MB':>8} {'total MB':>9}"
    )
    for since, s in loaded[::step] + [loaded[-1]]:
        print(
            f"{since:>12} {s['bench']:>9} {s['executor']:>13} {s['executor_max']:>8} {s['nats']:>8} {s['total']:>9}"
        )
    warm = [s for since, s in loaded if since <= args.warmup]
    after = [s for since, s in loaded if since > args.warmup]
    peak = max(s["total"] for _, s in loaded)
    print(f"peak total {peak} MB")
    if warm and after:
        w, e = warm[-1], after[-1]
        span = loaded[-1][0] - args.warmup
        print(
            f"end of warm-up ({args.warmup:g} s): bench {w['bench']} MB, executors {w['executor']} MB, total {w['total']} MB"
        )
        print(
            f"end of run ({loaded[-1][0]:g} s): bench {e['bench']} MB, executors {e['executor']} MB, total {e['total']} MB"
        )
        print(
            f"growth after warm-up: bench {e['bench'] - w['bench']:+.1f} MB, executors "
            f"{e['executor'] - w['executor']:+.1f} MB, total {e['total'] - w['total']:+.1f} MB over {span:.0f} s"
        )
    if args.json_path:
        rows = [{"s": t, "under_load_s": since, **s} for t, since, s in samples]
        args.json_path.write_text(json.dumps({"args": bench_args, "samples": rows, "progress": lines}))
    if failed:
        sys.exit(failed)


if __name__ == "__main__":
    main()
