"""Print the README's "Measured results" tables from the JSON files the benchmarks saved.

    python benchmarks/summarize.py

Every figure in the README's results section is copied from this script's output, so each one
traces back to a results file and the benchmark command that wrote it.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str):  # type: ignore[no-untyped-def]
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def gtn_vs_real() -> None:
    rows = []
    for label, folder in (("MNIST", "gtn_vs_real_mnist"), ("Fashion-MNIST", "gtn_vs_real_fashion")):
        r = load(f"{folder}/results.json")
        if r is None:
            continue
        t = str(r["inner_steps"])
        real_t = r["real"][t]
        best = real_t["best"]
        rows.append(
            f"| {label} | {r['meta_iterations']} its, {r['meta_training_minutes']:.1f} min, {r['peak_rss_mib']:.0f} MiB | "
            f"{pct(r['gtn']['test_mean'])} +- {pct(r['gtn']['test_std'])} | {pct(real_t['test_mean'])} +- "
            f"{pct(real_t['test_std'])} ({best['optimizer']} lr {best['lr']}"
            + (f" m {best['momentum']}" if best["optimizer"] == "sgd" else "") + ") | "
            f"{r['gap_points_at_T']:+.2f} | {r['speedup_text']} |")
    if rows:
        print("| dataset | meta-training (2 cores) | GTN, 32 steps | real data, 32 steps, tuned | gap (points) | "
              "real steps to match GTN |")
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))
        print()
    for label, folder in (("MNIST", "gtn_vs_real_mnist"), ("Fashion-MNIST", "gtn_vs_real_fashion")):
        r = load(f"{folder}/results.json")
        if r is None:
            continue
        horizons = ", ".join(f"{h}: {pct(v['test_mean'])}" for h, v in r["real"].items())
        print(f"- {label} real data, tuned per horizon (steps: test accuracy): {horizons}")
        if "ablations" in r:
            abl = ", ".join(f"{k} {pct(v['test_accuracy_mean'])} +- {pct(v['test_accuracy_std'])}"
                            for k, v in r["ablations"].items())
            it = next(iter(r["ablations"].values()))
            print(f"- {label} ablations ({it['iterations']} meta-iterations each, {it['learners']} learners): {abl}")
    print()


def overhead() -> None:
    r = load("strategy_overhead.json")
    if r is None:
        return
    print("| strategy | trials | ms per trial | duplicates served from the cache | best synthetic score |")
    print("|---|---|---|---|---|")
    for label, v in r.items():
        note = " (stopped: only repeats)" if v.get("stopped") else ""
        print(f"| {label} | {v['trials']}{note} | {v['ms_per_trial']:.2f} | {v['duplicates_from_cache']} | "
              f"{v['best_score']:.3f} |")
    print()


def throughput(name: str = "search_throughput.json") -> None:
    r = load(name)
    if r is None:
        return
    print(f"{name}:")

    def spread(v: dict, key: str) -> str:
        x = v.get(key)
        return "n/a" if x is None else f"{x['median']:.2f}x ({x['min']:.2f}-{x['max']:.2f})"

    rounds = r["settings"]["rounds"]
    print(f"| executor | trials | trials per hour (end to end) | trials per hour (steady state) | mean seconds per "
          f"trial | steady state vs 1 worker, 1 thread (median of {rounds} rounds, range) | vs 1 worker, 2 threads |")
    print("|---|---|---|---|---|---|---|")
    for label, v in r["configs"].items():
        print(f"| {label} | {v['trials']} | {v['trials_per_hour']:.0f} | {v['steady_trials_per_hour']:.0f} | "
              f"{v['mean_trial_seconds']:.2f} | {spread(v, 'steady_speedup_vs_1w1t')} | "
              f"{spread(v, 'steady_speedup_vs_1w2t')} |")
    ceilings = r.get("machine", [])
    if ceilings:
        print()
        print("machine ceiling per round (loop, memory stream): " + ", ".join(
            f"{c['loop_two_process_ceiling']:.2f}x / {c['memory_stream_two_process_ceiling']:.2f}x" for c in ceilings))
    print()


def pool_layout() -> None:
    r = load("pool_layout.json")
    if r is None:
        return
    print("| torch threads | seconds per trial, NCHW pooling | channels-last pooling | speed-up | identical scores |")
    print("|---|---|---|---|---|")
    for t in r["trials"]:
        print(f"| {t['threads']} | {t['nchw_seconds']:.2f} | {t['channels_last_seconds']:.2f} | {t['speedup']:.2f}x | "
              f"{'yes' if t['identical_scores'] else 'no'} ({t['archs']} architectures) |")
    speedups = [v["speedup"] for v in r["ops"].values()]
    print(f"\npooling ops alone (forward + backward, batch 64): {min(speedups):.1f}x-{max(speedups):.1f}x")
    print()


def compare() -> None:
    r = load("compare_fashion/results.json")
    if r is None:
        return
    print("| proxy | cost per architecture (MFLOPs) | seconds | Spearman (all) | Spearman (top 50%) | mean score |")
    print("|---|---|---|---|---|---|")
    for row in r["table"]:
        mean = row.get("mean_score")
        print(f"| {row['setting']} | {row['flops_per_arch'] / 1e6:,.1f} | {row['seconds_per_arch']:.2f} | "
              f"{row['all']['spearman']:.3f} | {row['top50']['spearman']:.3f} | "
              f"{'n/a' if mean is None else format(mean, '.4g')} |")
    for sp in r["speedup"]:
        print(f"- speed-up {sp['setting']}: FLOPs all {sp['all_flops_text']}, top 50% {sp['top50_flops_text']}; "
              f"seconds all {sp['all_seconds_text']}, top 50% {sp['top50_seconds_text']}")
    accs = [g["test_accuracy"] for g in r["ground_truth"] if g["status"] == "ok"]
    print(f"- ground truth: {len(accs)} architectures, test accuracy {min(accs):.4f} .. {max(accs):.4f}, "
          f"{r['ground_truth_seconds'] / 60:.1f} min of training")
    for v in (r.get("equal_budget") or {}).values():
        print(f"- equal budget {v['evaluator']} / {v['strategy']}: best final {v['best_final_mean']} +- "
              f"{v['best_final_std']} over {len(v['runs'])} seeds")
    print()


def misc() -> None:
    soak = load("soak_kill.json")
    if soak:
        print(f"- kill soak: {soak['kills']} kills, integrity {soak['integrity_check']}, lost {soak['trials_lost']}, "
              f"duplicated {soak['trials_duplicated']}, identical {soak['identical_to_uninterrupted_run']}")
    paper = load("gtn_paper_preset.json")
    if paper:
        for p in paper:
            print(f"- mnist-paper, checkpointing {'on' if p['checkpointing'] else 'off'}: "
                  f"{p['seconds_per_iteration']:.1f} s/it, peak RSS {p['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    gtn_vs_real()
    overhead()
    throughput()
    throughput("search_throughput_repeat.json")
    pool_layout()
    compare()
    misc()
