"""Soak test: SIGKILL a real search process again and again, then check that nothing was lost.

    python benchmarks/soak_kill.py --kills 25 --out benchmarks/results/soak_kill.json

A search (regularized evolution on the zero-cost ``synthetic`` evaluator, so that thousands of
trials, database commits and strategy snapshots happen every second: kills land in the middle of
writes) is started as ``python -m gtn_search search``, killed with SIGKILL at a random moment,
and started again, ``--kills`` times; then it runs to the end. The study must pass
``PRAGMA integrity_check`` and hold exactly the trials of an uninterrupted run with the same seed
(same numbers, genotypes, statuses and scores): no finished trial lost, none duplicated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def config(study: Path, trials: int) -> dict:
    return {"study": str(study), "space": "gtn-nas", "blueprint": "mnist-tiny",
            "strategy": {"name": "evolution", "options": {"population": 50, "sample_size": 10}},
            "evaluator": {"name": "synthetic"}, "budget": {"trials": trials}, "seed": 7}


def rows(study: Path) -> list[tuple]:
    from gtn_search.storage import Study

    s = Study(study, create=False)
    try:
        return [(t.number, t.hash, t.status, t.score) for t in s.trials()]
    finally:
        s.close()


def count(study: Path) -> int:
    """Finished trials in the study (0 while it does not exist yet or is being created)."""
    import sqlite3

    if not study.exists():
        return 0
    try:
        with sqlite3.connect(study, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]
    except sqlite3.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--trials", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="runs/soak_kill")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*"):
        old.unlink()
    killed_cfg = work / "killed.yaml"
    killed_cfg.write_text(yaml.safe_dump(config(work / "killed.db", args.trials)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "gtn_search", "search", str(killed_cfg), "--no-progress"]
    rng = random.Random(args.seed)
    kills, finished_early, progress = 0, 0, []
    start = time.time()
    while kills < args.kills:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = progress[-1] if progress else 0
        while proc.poll() is None and count(work / "killed.db") <= before:  # wait until it searches again
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 1.0))  # then kill at a random moment, mostly mid-write
        if proc.poll() is not None:
            finished_early += 1
            if proc.returncode != 0:
                raise SystemExit(f"the search failed: {proc.stderr.read().decode()[-2000:]}")
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        done = count(work / "killed.db")
        progress.append(done)
        print(f"kill {kills}: {done} trials recorded", flush=True)
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"the final resume failed: {res.stderr[-2000:]}")
    soak_seconds = time.time() - start

    ref_cfg = work / "reference.yaml"
    ref_cfg.write_text(yaml.safe_dump(config(work / "reference.db", args.trials)))
    subprocess.run([sys.executable, "-m", "gtn_search", "search", str(ref_cfg), "--no-progress"], env=env, cwd=REPO,
                   check=True, capture_output=True)
    import sqlite3

    with sqlite3.connect(work / "killed.db") as con:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    got, want = rows(work / "killed.db"), rows(work / "reference.db")
    got_numbers = [r[0] for r in got]
    result = {
        "kills": kills, "trials": args.trials, "integrity_check": integrity,
        "trials_recorded": len(got), "reference_trials": len(want),
        "trials_lost": len({r[0] for r in want} - set(got_numbers)),
        "trials_duplicated": len(got_numbers) - len(set(got_numbers)),
        "identical_to_uninterrupted_run": got == want, "trials_recorded_at_each_kill": progress,
        "soak_seconds": soak_seconds,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "trials_recorded_at_each_kill"}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    if not (integrity == "ok" and got == want and kills >= 1):
        raise SystemExit("soak FAILED: see the figures above")


if __name__ == "__main__":
    main()
