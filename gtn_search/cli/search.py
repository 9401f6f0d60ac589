"""``gtn-search search|strategies|show|export``: run studies, list strategies, inspect, export."""

from __future__ import annotations

import argparse
from pathlib import Path

from gtn_search.cli.common import add_device_argument, device_argument


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("search", help="run (or resume) a search from a YAML config")
    s.add_argument("config", help="search YAML (space, blueprint, strategy, evaluator, budget, seed, workers); "
                   "relative paths in it are taken from its folder")
    s.add_argument("--study", help="override the study database (path or sqlite:///path, from the current folder)")
    s.add_argument("--trials", type=int, help="override budget.trials")
    s.add_argument("--workers", type=int, help="override the number of parallel workers")
    s.add_argument("--dask", action="store_true", help="run trials on Dask (a LocalCluster unless --scheduler)")
    s.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (implies --dask)")
    s.add_argument("--data-root", help="dataset folder")
    add_device_argument(s)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_search)

    st = sub.add_parser("strategies", help="list the available search strategies")
    st.add_argument("--nevergrad", action="store_true", help="list every Nevergrad optimizer usable as ng:<Name>")
    st.add_argument("--optuna", action="store_true", help="list every Optuna sampler usable as optuna:<Name>")
    st.set_defaults(func=cmd_strategies)

    sh = sub.add_parser("show", help="print a study's summary table and draw best-score-over-time")
    sh.add_argument("study", help="study database")
    sh.add_argument("--top", type=int, default=10)
    sh.add_argument("--plot", help="image path for the best-score-over-time plot (.png, .pdf, .svg, ...)")
    sh.add_argument("--pareto-plot", help="image path for the Pareto fronts of every pair of objectives "
                    "(studies with several objectives)")
    sh.add_argument("--reference", action="append", default=[], metavar="NAME=VALUE",
                    help="hypervolume reference value of an objective, e.g. --reference params=2e5 (repeatable; "
                    "default: the study's reference_point, else 0 for score, a constraint's bound, or the worst "
                    "value seen less 10%% of the range)")
    sh.set_defaults(func=cmd_show)

    ex = sub.add_parser("export", help="write a study's top-k architectures as YAML (or one network as ONNX)")
    ex.add_argument("study", help="study database (with --onnx also an architecture YAML)")
    ex.add_argument("--top", type=int, default=5)
    ex.add_argument("--pareto", action="store_true", help="export every non-dominated trial (several objectives) "
                    "instead of the top-k by score")
    ex.add_argument("--out", help="folder for the YAML files (required unless --onnx)")
    ex.add_argument("--blueprint", help="blueprint to record for final training (default: the search blueprint)")
    from gtn_search.cli.onnx_cli import add_export_arguments as add_onnx_arguments

    add_onnx_arguments(ex)
    ex.set_defaults(func=cmd_export)


def cmd_search(args: argparse.Namespace) -> int:
    from gtn_search.configio import errors_name
    from gtn_search.runner import run_search
    from gtn_search.search_config import load_search_config

    overrides: dict = {}
    if args.study:
        overrides["study"] = args.study
    if args.trials is not None:
        overrides["budget"] = {"trials": args.trials}
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.dask or args.scheduler:
        overrides["executor"] = "dask"
    if args.scheduler:
        overrides["scheduler"] = args.scheduler
    if args.data_root:
        overrides["data_root"] = args.data_root
    if device_argument(args.device):
        overrides["device"] = args.device
    config = load_search_config(args.config, overrides)
    with errors_name(args.config):
        summary = run_search(config, progress=not args.no_progress, on_open=_announce)
    print_summary(summary)
    return 0


def _announce(study: Path, resumed: bool) -> None:
    print(f"study {study.resolve()} ({'resuming' if resumed else 'new'})", flush=True)


def print_summary(summary) -> None:  # type: ignore[no-untyped-def]
    note = f" (resumed; {summary.rerun} interrupted trial(s) re-run)" if summary.resumed else ""
    print(f"study {summary.study}{note}: {summary.evaluated} evaluated, {summary.cached} duplicates served from "
          f"the cache, {summary.failed} failed; {summary.seconds:.1f} s, {summary.flops / 1e12:.3f} TFLOPs")
    for rank, t in enumerate(summary.best[:5], 1):
        print(f"  #{rank} trial {t.number}: score {t.score:.4f}, {t.params or 0:,} params, {t.hash[:12]}")
    if summary.infeasible:
        print(f"  {summary.infeasible} candidate(s) broke a constraint and were not trained")
    _print_front(summary.study)


def _print_front(path: str) -> None:
    """With several objectives: the study's non-dominated trials and their hypervolume."""
    from gtn_search.pareto_report import front_table, pareto_summary
    from gtn_search.storage import Study

    study = Study(path, create=False)
    try:
        front = pareto_summary(study)
        if front.objectives.count > 1:
            print(front_table(front, 10))
    finally:
        study.close()


def cmd_strategies(args: argparse.Namespace) -> int:
    from gtn_search.registry import STRATEGIES

    if args.nevergrad:
        from strategies.nevergrad_adapter import nevergrad_optimizers

        print("\n".join(f"ng:{name}" for name in nevergrad_optimizers()))
        return 0
    if args.optuna:
        from strategies.optuna_adapter import optuna_samplers

        print("\n".join(f"optuna:{name}" for name in optuna_samplers()))
        return 0
    entries = STRATEGIES.entries()
    width = max([len(e.name) for e in entries] + [len("optuna:<Sampler>")])
    for e in entries:
        print(f"{e.name:<{width}}  {e.description}  [{e.source}]")
    print(f"{'ng:<Name>':<{width}}  any optimizer in nevergrad.optimizers.registry, e.g. ng:NGOpt, ng:TwoPointsDE, "
          f"ng:DiscreteOnePlusOne, ng:PortfolioDiscreteOnePlusOne (all: --nevergrad)")
    print(f"{'optuna:<Sampler>':<{width}}  any sampler in optuna.samplers, e.g. optuna:TPESampler, "
          f"optuna:NSGAIISampler, optuna:CmaEsSampler (all: --optuna; needs pip install 'gtn-search[optuna]')")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from gtn_search.cli.common import check_output
    from gtn_search.report import plot_best_over_time, summary_table
    from gtn_search.storage import Study

    for flag, value in (("--plot", args.plot), ("--pareto-plot", args.pareto_plot)):
        if value:
            from matplotlib.backend_bases import FigureCanvasBase

            formats = sorted(f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes())
            formats.sort(key=lambda ext: ext != ".png")  # the suggested one first
            check_output(value, flag, suffixes=formats)
    reference = _reference_values(args.reference)
    study = Study(args.study, create=False)
    try:
        print(summary_table(study, args.top))
        if reference:
            from gtn_search.pareto_report import front_table, pareto_summary

            print()
            print(front_table(pareto_summary(study, reference), args.top))
        if args.plot:
            print(f"wrote {plot_best_over_time(study, args.plot)}")
        if args.pareto_plot:
            from gtn_search.pareto_report import pareto_summary, plot_pareto

            print(f"wrote {plot_pareto(pareto_summary(study, reference), args.pareto_plot)}")
    finally:
        study.close()
    return 0


def _reference_values(items: list[str]) -> dict[str, float]:
    """``["params=2e5", "score=0"]`` -> ``{"params": 200000.0, "score": 0.0}`` (one clear line if malformed)."""
    import math

    from gtn_search.errors import ConfigError

    out = {}
    for item in items:
        name, _, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not name or not math.isfinite(value):
            raise ConfigError(f"--reference {item!r}: write NAME=VALUE with a finite number, e.g. --reference params=2e5")
        out[name.strip()] = value
    return out


def cmd_export(args: argparse.Namespace) -> int:
    from gtn_search.cli.common import check_output, resolve_blueprint
    from gtn_search.errors import ConfigError
    from gtn_search.report import export_pareto, export_top
    from gtn_search.storage import Study

    if args.onnx:
        from gtn_search.cli.onnx_cli import cmd_export_onnx

        return cmd_export_onnx(args)
    if args.out is None:
        raise ConfigError("--out is required: a folder for the YAML files (or --onnx OUT.onnx for one ONNX model)")
    check_output(args.out, "--out", folder=True)
    study = Study(args.study, create=False)
    try:
        bp = resolve_blueprint(args.blueprint) if args.blueprint else None
        paths = export_pareto(study, Path(args.out), bp) if args.pareto else export_top(study, Path(args.out), args.top, bp)
        for path in paths:
            print(f"wrote {path}")
    finally:
        study.close()
    return 0
