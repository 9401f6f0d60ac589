"""``gtn-search compare``: GTN versus real data (and training-free proxies) under equal compute."""

from __future__ import annotations

import argparse
from pathlib import Path

from gtn_search.cli.common import add_device_argument, device_argument


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("compare", help="rank correlation of proxies with final training, speed-up, equal-budget "
                       "searches; writes report.md and plots (run again to continue)")
    c.add_argument("config", help="compare YAML (dataset, space, blueprint, num_architectures, ground_truth, "
                   "proxies, equal_budget)")
    c.add_argument("--out", help="override the output folder (from the current folder; relative paths in the "
                   "config are taken from the config's folder)")
    c.add_argument("--data-root", help="dataset folder")
    c.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_device_argument(c)
    c.add_argument("--no-progress", action="store_true")
    c.add_argument("--status", action="store_true",
                   help="print what is done and what is left (ground truth, proxies, searches) and exit; computes "
                   "and writes nothing, so it is safe beside a running comparison")
    c.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from gtn_search.cli.common import check_output
    from gtn_search.cli.gtn import _threads
    from gtn_search.compare import load_compare_config, run_compare
    from gtn_search.compare.report import speedup_line
    from gtn_search.configio import errors_name

    _threads(args.threads)
    overrides = {k: v for k, v in (("out", args.out), ("data_root", args.data_root),
                                   ("device", device_argument(args.device))) if v}
    config = load_compare_config(args.config, overrides)
    check_output(config.out, "--out" if args.out else f"{args.config}: field 'out':", folder=True)
    if args.status:
        from gtn_search.compare.run import Comparison
        from gtn_search.compare.status import comparison_progress

        with errors_name(args.config):
            comparison = Comparison(config, progress=False, read_only=True)
            try:
                print("\n".join(comparison_progress(comparison).lines()))
            finally:
                comparison.store.close()
        return 0
    with errors_name(args.config):
        results = run_compare(config, progress=not args.no_progress)
    print(f"{len(results['architectures'])} architectures, ground truth in {results['ground_truth_seconds']:.0f} s")
    for r in results["table"]:
        print(f"  {r['setting']:<20} Spearman {r['all']['spearman']:+.3f} (top 50%: {r['top50']['spearman']:+.3f}), "
              f"{r['flops_per_arch'] / 1e6:,.1f} MFLOPs and {r['seconds_per_arch']:.2f} s per architecture")
    for s in results["speedup"]:
        print(f"  {speedup_line(s)}")
    print(f"report: {Path(config.out, 'report.md').absolute()}")
    return 0
