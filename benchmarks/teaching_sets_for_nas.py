"""How well random candidate cells learn from each teaching set: the quality of a GTN for NAS.

    python benchmarks/teaching_sets_for_nas.py --data-root ../shared/data \
        --set fashion-nas=benchmarks/results/compare_fashion/teaching_set.pt \
        --set fixed-learner=benchmarks/results/fashion_fixed_gtn/teaching_set.pt [--archs 24]

Each teaching set trains the same ``--archs`` random cells of the paper's space (``gtn-nas``,
``mnist-tiny`` blueprint, the GTN evaluator as a search uses it) for each of ``--steps`` steps and
scores them on 1,000 validation images. Reported per set and step count: mean and standard deviation
of the validation accuracy over the cells, and the meta-training cost read from the set's
``history.json`` when it lies beside it. Whether the set also *ranks* cells well is what
``gtn-search compare`` measures against a ground truth; this script answers the cheaper question
whether cells learn from it at all (a GTN meta-trained with one fixed learner may not transfer to
other architectures: uber-research/GTN issue 3). Results go to
``benchmarks/results/teaching_sets_for_nas.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gtn_search.evaluators import make_evaluator  # noqa: E402
from search_spaces.blueprint import blueprint_preset  # noqa: E402
from search_spaces.presets import get_space  # noqa: E402


def meta_training_cost(teaching_set: Path) -> dict[str, float] | None:
    """Iterations and summed seconds of the meta-training that wrote ``teaching_set`` (if recorded)."""
    history = teaching_set.parent / "history.json"
    if not history.is_file():
        return None
    h = json.loads(history.read_text())
    return {"iterations": len(h.get("iteration", [])), "seconds": float(sum(h.get("seconds", [])))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--set", action="append", required=True, metavar="LABEL=PATH",
                        help="a teaching set to measure (repeat the option for several)")
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--steps", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the architecture sample")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "teaching_sets_for_nas.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sets = dict(item.split("=", 1) for item in args.set)
    rng = np.random.default_rng(args.seed)
    space, bp = get_space("gtn-nas"), blueprint_preset("mnist-tiny")
    archs = [space.sample(rng) for _ in range(args.archs)]
    results: dict[str, dict[str, object]] = {}
    for label, path in sets.items():
        row: dict[str, object] = {"teaching_set": path, "meta_training": meta_training_cost(Path(path))}
        for steps in args.steps:
            ev = make_evaluator("gtn", {"teaching_set": path, "val_size": 1000, "steps": steps}, args.data_root)
            ev.setup()
            scores = []
            for i, arch in enumerate(archs):
                r = ev.evaluate(arch, bp, 1000 + i)
                scores.append(r.score if r.ok else float("nan"))
            ok = [s for s in scores if s == s]
            row[f"steps_{steps}"] = {"mean": statistics.fmean(ok), "std": statistics.stdev(ok), "failed": len(scores) - len(ok),
                                     "scores": scores}
            print(f"{label:<16} {steps:>3} steps: validation accuracy {statistics.fmean(ok):.3f} +- "
                  f"{statistics.stdev(ok):.3f} over {len(ok)} random cells", flush=True)
        results[label] = row
    Path(args.out).write_text(json.dumps({"archs": args.archs, "seed": args.seed, "sets": results}, indent=2))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
