"""Benchmark: the test suite's wall time, in one process or in parallel test processes.

    python benchmarks/suite_time.py --out benchmarks/results/suite_time.json [--rounds 1]

Runs the README's test command (``python -m pytest -q``) as ``.ci/run`` does (``OMP_NUM_THREADS=2``,
an empty cache folder, no ``GTN_SEARCH_DATA``), once with ``-n 0`` (every test in one process, as the
suite ran before pytest-xdist) and once as configured (``addopts``: one test process per core, at
most 4), back to back in each round and in alternating order (this VM's speed drifts by 20% within
minutes). Prints and saves each run's wall seconds, pytest's own summary line and the ratio. Run it
with nothing else busy on the machine: it measures the whole machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODES = {"one_process": ["-n", "0"], "parallel": []}


def run_suite(extra: list[str]) -> dict[str, object]:
    """One run of the suite; its wall seconds, exit status and pytest's summary line."""
    env = {k: v for k, v in os.environ.items() if k != "GTN_SEARCH_DATA"}
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory() as cache:
        env["XDG_CACHE_HOME"] = cache
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
                              cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    summary = [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return {"seconds": seconds, "returncode": proc.returncode, "summary": summary[-1] if summary else proc.stdout[-500:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for r in range(args.rounds):
        order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
        row: dict[str, object] = {"order": order}
        for mode in order:
            row[mode] = got = run_suite(MODES[mode])
            print(f"round {r}, {mode}: {got['seconds']:.0f} s  ({got['summary']})", flush=True)
        row["speedup"] = row["one_process"]["seconds"] / row["parallel"]["seconds"]  # type: ignore[index]
        print(f"round {r}: parallel test processes {row['speedup']:.2f}x faster", flush=True)
        rows.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"cpu_count": os.cpu_count(), "rounds": rows}, indent=2) + "\n")
    if any(row[m]["returncode"] != 0 for row in rows for m in MODES):  # type: ignore[index]
        sys.exit("a suite run failed: see the summary lines above")


if __name__ == "__main__":
    main()
