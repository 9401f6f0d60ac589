"""Draw published zoo cells and the quickstart's best cell to benchmarks/results/drawings/ (graphviz if installed).

    python benchmarks/draw_cells.py [--quickstart runs/quickstart]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search_spaces.drawing import draw_architecture, graphviz_available  # noqa: E402
from search_spaces.yaml_format import load_architecture  # noqa: E402
from search_spaces.zoo import load_zoo_cell  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quickstart", default=str(ROOT / "runs" / "quickstart"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "drawings"))
    args = parser.parse_args()
    out = Path(args.out)
    print(f"engine: {'graphviz' if graphviz_available() else 'matplotlib (graphviz not installed)'}")
    for name, title in (("darts-v2", "DARTS V2 (Liu et al. 2019)"), ("enas", "ENAS (Pham et al. 2018)")):
        record = load_zoo_cell(name)
        print(f"wrote {draw_architecture(getattr(record, 'architecture', record), out / f'{name}.png', title)}")
    best = sorted((Path(args.quickstart) / "best").glob("rank01_*.yaml"))
    if best:
        record = load_architecture(best[0])
        title = f"quickstart best cell {record.architecture.short_hash} (GTN proxy {record.metadata['score']:.4f})"
        print(f"wrote {draw_architecture(record.architecture, out / 'quickstart_best.png', title)}")


if __name__ == "__main__":
    main()
