"""An optimisation of 200 trials on one year of one-minute candles, embedded, as a user runs it (issue 16's
target: at most 60 s on this machine's 2 cores).

Writes a year of generated minutes (525,600, a random walk) to a Parquet file, and a strategy that
declares its parameters (an SMA crossover: fast 2-50, slow 10-200), then times the whole command

    tradewind optimize sma.lua --data year.parquet --trials 200 --objective sharpe --seed N --json

as a process, several runs with different seeds: wall and CPU seconds (the command and its worker
processes), peak RSS, trials pruned, and trials per second. Prints the medians.

    .venv/bin/python benchmarks/optimize_speed.py [--trials 200] [--candles 525600] [--runs 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

STRATEGY = """
params = {
  fast = {type = "int", min = 2, max = 50, default = 10, description = "fast SMA"},
  slow = {type = "int", min = 10, max = 200, default = 30, description = "slow SMA"},
}

function decide(c, params)
  local fast, slow = ta.sma(c.close, params.fast), ta.sma(c.close, params.slow)
  local f, s = fast[#fast], slow[#slow]
  if f ~= f or s ~= s then return "neutral" end
  if f > s then return "long" end
  return "short"
end
"""


def write_year(path: Path, n: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0005, n)) * close
    t = 1_672_531_200_000 + np.arange(n, dtype=np.int64) * 60_000  # 2023-01-01 UTC
    table = pa.table({"time": t, "open": open_, "high": np.maximum(open_, close) + spread,
                      "low": np.minimum(open_, close) - spread, "close": close, "volume": rng.uniform(1, 10, n)})  # fmt: skip
    pq.write_table(table, path)


def one_run(
    tradewind: str, strategy: Path, data: Path, trials: int, seed: int, workers: int, env: dict
) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M", tradewind, "optimize", str(strategy), "--data", str(data), "--trials",
         str(trials), "--objective", "sharpe", "--seed", str(seed), "--workers", str(workers), "--json"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = json.loads(out.stdout)
    peak_kib = int(out.stderr.strip().splitlines()[-1])
    best = result["best"][0] if result.get("best") else {}
    return {"wall_s": wall, "cpu_s": cpu, "peak_mib": peak_kib / 1024, "trials": result["trials"],
            "best": best.get("params"), "sharpe": (best.get("values") or [None])[0],
            "repeats": repeats(Path(env["TRADEWIND_DATA_DIR"]) / "tradewind.db.optuna", result["study"])}  # fmt: skip


def repeats(path: Path, study: str) -> int | None:
    """The trials of the study whose parameters repeated an earlier trial's (they took its results without
    running: the ``same_as`` attribute); None when the storage cannot be read."""
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        s = optuna.load_study(study_name=study, storage=f"sqlite:///{path}")
    except Exception:
        return None
    return sum(1 for t in s.get_trials(deepcopy=False) if "same_as" in t.user_attrs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--candles", type=int, default=525_600)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    tradewind = str(Path(sys.executable).with_name("tradewind"))
    with tempfile.TemporaryDirectory(prefix="tw-optimize-") as tmp:
        folder = Path(tmp)
        data, strategy = folder / "year.parquet", folder / "sma.lua"
        write_year(data, args.candles)
        strategy.write_text(STRATEGY)
        runs = []
        for i in range(args.runs):
            env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIND_")}
            env["TRADEWIND_DATA_DIR"] = str(folder / f"data-{i}")  # a study database of its own each run
            r = one_run(tradewind, strategy, data, args.trials, seed=i + 1, workers=args.workers, env=env)
            runs.append(r)
            print(f"run {i + 1}: {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU, peak {r['peak_mib']:.0f} MiB, "
                  f"trials {r['trials']}, {r['repeats']} repeats, best {r['best']} (Sharpe {r['sharpe']})", file=sys.stderr)  # fmt: skip
    wall = statistics.median(r["wall_s"] for r in runs)
    print(f"{args.trials} trials x {args.candles:,} one-minute candles, {args.workers} workers, "
          f"{platform.machine()} {os.cpu_count()} cores: median {wall:.1f} s wall "
          f"({args.trials / wall:.1f} trials/s), {statistics.median(r['cpu_s'] for r in runs):.1f} s CPU, "
          f"peak {statistics.median(r['peak_mib'] for r in runs):.0f} MiB (the largest of its processes)")  # fmt: skip


if __name__ == "__main__":
    main()
