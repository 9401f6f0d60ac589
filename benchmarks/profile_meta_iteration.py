"""Where a GTN meta-iteration spends its time: torch.profiler's operator table for one preset.

    python benchmarks/profile_meta_iteration.py --preset fashion-nas --data-root ../shared/data [--threads 2]

Runs two warm-up meta-iterations, then profiles ``--iterations`` more (the same learner and batches
every time, as ``benchmarks/learner_speed.py`` does) and prints the operators by self CPU time with
their call counts, plus the unprofiled seconds per iteration. Profiles are inflated by the
profiler's own overhead on small ops; use them for shares and call counts, not for timings.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gtn_search.data import load_dataset  # noqa: E402
from gtn_search.gtn.config import load_config  # noqa: E402
from gtn_search.gtn.meta_train import MetaTrainer  # noqa: E402
from gtn_search.host_memory import retain_freed_memory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion-nas")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    retain_freed_memory()
    config = load_config(args.preset, {"monitor_every": 0})
    trainer = MetaTrainer(config, load_dataset(config.dataset, args.data_root))

    def step() -> None:
        trainer.iteration = 3  # the same learner and batches every time
        trainer.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(args.iterations):
        step()
    seconds = (time.perf_counter() - start) / args.iterations
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.iterations):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=48))
    calls = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
    print(f"{args.preset}: {seconds:.2f} s per meta-iteration unprofiled ({args.threads} threads); "
          f"{calls / args.iterations:,.0f} aten calls per iteration (the table's counts cover {args.iterations})")


if __name__ == "__main__":
    main()
