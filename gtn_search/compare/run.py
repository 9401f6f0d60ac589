"""``gtn-search compare``: GTN versus real-data (and training-free) proxies under equal compute.

1. **Rank correlation**: M seeded architectures; ground truth = final training of each (test
   accuracy); every proxy setting scores every architecture on validation data with its measured
   cost; Spearman/Kendall over all and over the top 50% by proxy, with bootstrap intervals; the
   speed-up factor = real-data cost needed to match the GTN proxy's correlation / GTN cost.
2. **Equal-budget searches** (optional): each strategy x evaluator x seed searches under the same
   FLOPs budget; the top-k of each search by its own proxy get final training; best final test
   accuracy per evaluator (mean +- std over seeds) and best-found-versus-compute curves.

Everything is stored as it is computed (``compare.db`` and the search studies), so running the
same command again continues where it stopped and recomputes nothing.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gtn_search.compare.analysis import correlation, cost_to_reach, noise_ceiling, top_fraction
from gtn_search.compare.config import CompareConfig
from gtn_search.compare.store import CompareStore, digest
from gtn_search.compare.tables import write_tables
from gtn_search.compare.targets import judge
from gtn_search.configio import write_text_atomic
from gtn_search.data import load_dataset
from gtn_search.errors import GTNSearchError, TrainingError
from gtn_search.evaluators import Evaluator, make_evaluator
from gtn_search.evaluators.base import EvalResult
from gtn_search.device import spreads_over_gpus, visible_gpus
from gtn_search.final_train import TrainConfig, train_final
from gtn_search.provenance import devices_of
from gtn_search.registry import EVALUATORS
from gtn_search.runner import resolve_blueprint, run_search
from gtn_search.search_config import Budget, PluginSpec, SearchConfig
from gtn_search.seeding import derive_seed, numpy_rng
from gtn_search.storage import Study
from gtn_search.studylock import StudyLock
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint
from search_spaces.space import CellSearchSpace


def _file_digests(options: dict[str, Any]) -> dict[str, str]:
    """Content hashes of the files an evaluator reads (a re-trained teaching set at the same path
    must not reuse the old scores)."""
    import hashlib

    out = {}
    for key, value in options.items():
        if isinstance(value, str) and key.endswith(("_set", "_file", "_path")) and Path(value).is_file():
            out[key] = hashlib.sha256(Path(value).read_bytes()).hexdigest()
    return out


class Comparison:
    """One comparison run (see the module docstring); :meth:`run` returns the results dict."""

    def __init__(self, config: CompareConfig, progress: bool = True, read_only: bool = False) -> None:
        self.config = config
        self.progress = progress
        self.out = Path(config.out)
        self.space = CellSearchSpace.from_mapping(config.space, where="space")
        self.blueprint = resolve_blueprint(config.blueprint)
        gt = config.ground_truth
        self.gt_blueprint: Blueprint = resolve_blueprint(gt.blueprint) if gt.blueprint is not None else self.blueprint
        if config.workers > 1 and not read_only:
            from gtn_search.executors import COMPARISON_PRELOAD, start_worker_server

            start_worker_server(COMPARISON_PRELOAD)  # its imports run while this process reads the data
        self.data = load_dataset(config.dataset, config.data_root, limit=config.limit)
        #: the store key of each ground-truth replicate (replicate 0's is the key of a single-seed run)
        self.gt_keys = [digest({"dataset": self.data.name, "limit": config.limit,
                                "blueprint": self.gt_blueprint.to_mapping(),
                                "recipe": gt.recipe.model_dump(mode="json"), "seed": s})
                        for s in gt.replicate_seeds()]
        self.store = CompareStore(self.out / "compare.db", read_only=read_only)
        #: the ground-truth recipe on the comparison's device unless the recipe names one
        self.recipe = gt.recipe if gt.recipe.device else gt.recipe.model_copy(update={"device": config.device})

    # -- architectures and ground truth ---------------------------------------------------------
    def architectures(self) -> list[Architecture]:
        """M distinct architectures, seeded."""
        rng = numpy_rng(self.config.seed, "compare-architectures")
        archs: dict[str, Architecture] = {}
        attempts = 0
        while len(archs) < self.config.num_architectures:
            arch = self.space.sample(rng)
            archs.setdefault(arch.hash, arch)
            attempts += 1
            if attempts > 100 * self.config.num_architectures:
                raise GTNSearchError(f"num_architectures={self.config.num_architectures} but the space has only "
                                     f"{self.space.size():.3g} architectures; lower num_architectures")
        return list(archs.values())

    def ground_truth(self, arch: Architecture) -> dict[str, Any]:
        """The ground truth of ``arch``: every replicate trained once (then read from the store), combined.

        One replicate: its final-training result. Several: the first one's fields with
        ``test_accuracy`` the mean over replicates, ``replicate_accuracies`` each one's, and
        ``seconds`` their sum; failed if any replicate failed.
        """
        seeds = self.config.ground_truth.replicate_seeds()
        rows = []
        for r, (key, seed) in enumerate(zip(self.gt_keys, seeds)):
            row = self.store.ground_truth(key, arch.hash)
            if row is None:
                row = _ground_truth_result(arch, self.gt_blueprint, self.data, self.recipe,
                                           self._gt_dir(arch, r), seed)
                self.store.put_ground_truth(key, arch.hash, row["status"], row)
            rows.append(row)
        return combine_replicates(rows)

    def _gt_dir(self, arch: Architecture, replicate: int = 0) -> Path:
        return self.out / "ground_truth" / self.gt_keys[replicate][:8] / arch.short_hash

    # -- proxies ----------------------------------------------------------------------------------
    def _options(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        cls = EVALUATORS.get(name, where="compare proxy evaluator")
        fields = getattr(cls.Config, "model_fields", {})
        if "dataset" in fields and "dataset" not in options:
            options = {**options, "dataset": self.config.dataset}
        return options

    def proxy_evaluators(self) -> dict[str, tuple[Evaluator, str, dict[str, Any], str]]:
        """Every proxy setting: its evaluator (set up, so bad input fails here), name, options and store key."""
        out = {}
        for setting, (proxy, options) in self.config.settings().items():
            options = self._options(proxy.evaluator.name, options)
            evaluator = make_evaluator(proxy.evaluator.name, options, self.config.data_root, self.config.device,
                                       self.config.base_dir)
            evaluator.setup()
            resolved = {k: getattr(evaluator.config, k) for k in options if hasattr(evaluator.config, k)}
            key = digest({"evaluator": evaluator.describe(), "blueprint": self.blueprint.to_mapping(),
                          "files": _file_digests(resolved)})
            out[setting] = (evaluator, proxy.evaluator.name, options, key)
        return out

    def proxy_jobs(self, arch: Architecture, evaluators: dict[str, tuple[Evaluator, str, dict[str, Any], str]]
                   ) -> list[list[str]]:
        """The settings ``arch`` still lacks, in jobs: the missing step counts of one proxy's sweep in
        one job (one training scored on the way, bit for bit the separate results) where its
        evaluator can sweep (:meth:`~gtn_search.evaluators.base.Evaluator.can_sweep`), every other
        setting alone."""
        proxies = self.config.settings()
        groups: dict[str, list[str]] = {}
        for setting, (_, _, _, key) in evaluators.items():
            if self.store.proxy(key, arch.hash) is None:
                groups.setdefault(proxies[setting][0].label, []).append(setting)
        jobs = []
        for settings in groups.values():
            settings.sort(key=lambda s: proxies[s][1].get("steps", 0))
            if len(settings) > 1 and evaluators[settings[-1]][0].can_sweep():
                jobs.append(settings)
            else:
                jobs.extend([s] for s in settings)
        return jobs

    def proxy_setting_order(self, evaluators: dict[str, Any]) -> list[str]:
        """The order in which worker processes compute the proxy settings: setting by setting, the
        training-free ones (no step count; about a second per architecture) first, so every peer is
        available early, then the trained ones as listed."""
        proxies = self.config.settings()
        return sorted(evaluators, key=lambda s: "steps" in proxies[s][1])

    def _job_steps(self, settings: list[str]) -> list[int]:
        proxies = self.config.settings()
        return [int(proxies[s][1]["steps"]) for s in settings]

    def _store_job(self, settings: list[str], evaluators: dict[str, tuple[Evaluator, str, dict[str, Any], str]],
                   arch_hash: str, result: dict[str, Any] | dict[int, dict[str, Any]]) -> None:
        """Store a job's result: one row, or (a sweep) one row per setting under its own key."""
        if len(settings) == 1:
            self.store.put_proxy(evaluators[settings[0]][3], arch_hash, result)
            return
        for setting, steps in zip(settings, self._job_steps(settings)):
            self.store.put_proxy(evaluators[setting][3], arch_hash, result[steps])  # type: ignore[index]

    def proxy_results(self, archs: list[Architecture], evaluators: dict[str, tuple[Evaluator, str, dict[str, Any], str]],
                      bar) -> dict[str, list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
        """Every setting's row for every architecture, computing (in this process) what the store lacks."""
        for arch in archs:
            seed = derive_seed(self.config.seed, "compare-proxy", arch.hash)
            for settings in self.proxy_jobs(arch, evaluators):
                evaluator = evaluators[settings[-1]][0]
                if len(settings) == 1:
                    result: Any = evaluator.evaluate(arch, self.blueprint, seed).to_dict()
                else:
                    swept = evaluator.evaluate_sweep(arch, self.blueprint, seed, self._job_steps(settings))
                    result = {s: r.to_dict() for s, r in swept.items()}
                self._store_job(settings, evaluators, arch.hash, result)
        results: dict[str, list[dict[str, Any]]] = {}
        for setting, (_, _, _, key) in evaluators.items():
            rows = []
            for arch in archs:
                rows.append(self.store.proxy(key, arch.hash))
                bar.update(1)
            results[setting] = rows  # type: ignore[assignment]
        return results

    def compute_in_parallel(self, archs: list[Architecture],
                            evaluators: dict[str, tuple[Evaluator, str, dict[str, Any], str]],
                            bar=None) -> None:  # type: ignore[no-untyped-def]
        """Fill the store with every missing ground truth and proxy score using ``workers`` local
        processes; each result is committed as it arrives (an interrupted run keeps them)."""
        from tqdm.auto import tqdm

        own_bar = bar is None
        if bar is None:
            bar = tqdm(total=len(archs) * (1 + len(evaluators)), disable=not self.progress, unit="eval",
                       desc="final training", dynamic_ncols=True)
        import concurrent.futures as cf

        from gtn_search.executors import COMPARISON_PRELOAD, cores_per_process, kill_workers, local_pool

        gt = self.config.ground_truth
        replicates = list(zip(self.gt_keys, gt.replicate_seeds()))
        gpus = visible_gpus() if spreads_over_gpus(self.config.device) else []
        threads = cores_per_process(self.config.workers)
        pool = local_pool(self.config.workers, threads, gpus, preload=COMPARISON_PRELOAD)
        data_spec = (self.config.dataset, self.config.data_root, self.config.limit)
        todo: list[_Job] = []
        for r, (gt_key, gt_seed) in enumerate(replicates):  # replicate 0 of every architecture first
            for arch in archs:
                if self.store.ground_truth(gt_key, arch.hash) is None:
                    todo.append(_Job("gt", gt_key, arch.hash, _ground_truth_job,
                                     (arch, self.gt_blueprint, data_spec, self.recipe, self._gt_dir(arch, r), gt_seed)))
        order = {setting: i for i, setting in enumerate(self.proxy_setting_order(evaluators))}
        proxy_jobs = [(settings, arch) for arch in archs for settings in self.proxy_jobs(arch, evaluators)]
        for settings, arch in sorted(proxy_jobs, key=lambda job: order[job[0][0]]):
            _, name, options, _ = evaluators[settings[-1]]
            seed = derive_seed(self.config.seed, "compare-proxy", arch.hash)
            steps = self._job_steps(settings) if len(settings) > 1 else None
            todo.append(_Job("proxy", settings, arch.hash, _proxy_job,
                             (name, options, self.config.data_root, self.config.base_dir, arch, self.blueprint, seed,
                              self.config.device, steps)))
        bar.update(bar.total - sum(1 if j.kind == "gt" else len(j.what) for j in todo) - bar.n)

        def store(job: _Job, result: Any) -> None:
            if job.kind == "gt":
                self.store.put_ground_truth(job.what, job.arch_hash, result["status"], result)
                bar.update(1)
            else:
                self._store_job(job.what, evaluators, job.arch_hash, result)
                bar.update(len(job.what))

        try:
            jobs = {pool.submit(job.fn, *job.args): job for job in todo}
            while jobs:
                outstanding = list(jobs.values())  # in submission order: the pool runs them first in, first out
                done, _ = cf.wait(list(jobs), return_when=cf.FIRST_COMPLETED)
                broken = False
                for fut in done:
                    job = jobs.pop(fut)
                    try:
                        result = fut.result()
                    except cf.process.BrokenProcessPool:
                        broken = True
                        continue
                    store(job, result)
                    outstanding.remove(job)
                if not broken:
                    continue
                # a worker died (the OOM killer, a crash) and took every job of its pool with it. Which
                # running job killed it is unknown: run each of them again alone (a culprit that dies
                # alone MAX_WORKER_DEATHS times is recorded as failed), then the rest on a fresh pool
                jobs.clear()
                kill_workers(pool)
                pool.shutdown(wait=False, cancel_futures=True)
                running, waiting = outstanding[: self.config.workers], outstanding[self.config.workers :]
                for job in running:
                    result = _run_alone(job, threads, gpus)
                    store(job, job.failure() if result is None else result)
                pool = local_pool(self.config.workers, threads, gpus, preload=COMPARISON_PRELOAD)
                jobs = {pool.submit(job.fn, *job.args): job for job in waiting}
        except BaseException:  # interrupted or failed: running jobs are abandoned, their workers killed
            kill_workers(pool)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            if own_bar:
                bar.close()
        pool.shutdown()

    # -- analysis ---------------------------------------------------------------------------------
    def noise_ceiling(self, truths: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
        """Seed-to-seed rank correlation of the ground truth (architectures whose replicates all succeeded)."""
        table = [t.get("replicate_accuracies", [t["test_accuracy"]]) for t in truths if t["status"] == "ok"]
        return noise_ceiling(table, self.config.bootstrap, self.config.seed)

    def correlations(self, archs: list[Architecture], truths: list[dict[str, Any]],
                     proxies: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """One row per proxy setting: Spearman and Kendall with the ground truth (all architectures and
        the top 50% by the proxy's own score, bootstrap intervals), cost and mean score."""
        return [self.correlation_row(setting, proxies[setting], truths) for setting in self.config.settings()]

    def correlation_row(self, setting: str, rows: list[dict[str, Any]], truths: list[dict[str, Any]]
                        ) -> dict[str, Any]:
        """The table row of one proxy setting from its rows and the ground truth (same order)."""
        proxy, _ = self.config.settings()[setting]
        pairs = [(p["score"], t["test_accuracy"]) for p, t in zip(rows, truths)
                 if p["status"] == "ok" and t["status"] == "ok"]
        xs, ys = [p for p, _ in pairs], [t for _, t in pairs]
        all_c = correlation(xs, ys, self.config.bootstrap, self.config.seed)
        top_c = correlation(*top_fraction(xs, ys, 0.5), self.config.bootstrap, self.config.seed)
        flops = statistics.mean((r["train_flops"] + r["eval_flops"]) for r in rows)
        seconds = statistics.mean(r["wall_seconds"] for r in rows)
        steps = rows[0]["sgd_steps"] if rows else 0
        return {"setting": setting, "label": proxy.label, "kind": proxy.curve_kind(), "steps": steps,
                "n": len(pairs), "failed": sum(r["status"] != "ok" for r in rows),
                "flops_per_arch": flops, "seconds_per_arch": seconds,
                "mean_score": statistics.mean(xs) if xs else None,
                "all": asdict(all_c), "top50": asdict(top_c)}

    @staticmethod
    def speedups(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """For each GTN setting: real-data cost needed to match its Spearman / its cost."""
        real = [r for r in table if r["kind"] == "real"]
        out = []
        for g in (r for r in table if r["kind"] == "gtn"):
            entry: dict[str, Any] = {"setting": g["setting"]}
            for subset in ("all", "top50"):
                target = g[subset]["spearman"]
                for unit in ("flops", "seconds"):
                    curve = [(r[f"{unit}_per_arch"], r[subset]["spearman"]) for r in real]
                    need = cost_to_reach(curve, target) if not math.isnan(target) else None
                    cost = g[f"{unit}_per_arch"]
                    if need is None or cost <= 0:
                        top = max((c for c, _ in curve), default=0.0)
                        entry[f"{subset}_{unit}"] = None
                        entry[f"{subset}_{unit}_text"] = (f">= {top / cost:.1f}x (real data never reached it)"
                                                          if cost > 0 and top > 0 else "n/a")
                    elif curve and curve[0][1] >= target:  # the cheapest real-data setting already reaches it
                        entry[f"{subset}_{unit}"] = need / cost
                        entry[f"{subset}_{unit}_text"] = (f"<= {need / cost:.1f}x (the cheapest real-data setting "
                                                          f"already reaches it)")
                    else:
                        entry[f"{subset}_{unit}"] = need / cost
                        entry[f"{subset}_{unit}_text"] = f"{need / cost:.1f}x"
            out.append(entry)
        return out

    # -- equal-budget searches --------------------------------------------------------------------
    def equal_budget(self) -> dict[str, Any] | None:
        """Run every (evaluator, strategy, seed) search under the same FLOPs budget, then final-train
        what they found (the top-k and the best-so-far at each curve mark), in parallel when
        ``workers`` > 1; every search and ground truth is stored, so a rerun continues."""
        eb = self.config.equal_budget
        if eb is None:
            return None
        settings = self.config.settings()
        picks: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for setting, strategy, seed in self.equal_budget_searches():
            proxy, options = settings[setting]
            options = self._options(proxy.evaluator.name, options)
            cfg = SearchConfig(
                study=str(self.search_path(setting, strategy, seed)),
                space=self.config.space, blueprint=self.config.blueprint,
                strategy=PluginSpec(name=strategy, options=eb.strategy_options.get(strategy, {})),
                evaluator=PluginSpec(name=proxy.evaluator.name, options=options),
                budget=Budget(flops=eb.flops), seed=seed, data_root=self.config.data_root,
                device=self.config.device, base_dir=self.config.base_dir)
            summary = run_search(cfg, progress=self.progress)
            picks.setdefault((setting, strategy), []).append(
                self.search_picks(Study(summary.study), eb.top_k, eb.flops, eb.curve_fractions))
        needed = {a.hash: a for runs in picks.values() for r in runs for a in r["archs"]}
        if self.config.workers > 1:
            self.compute_in_parallel(list(needed.values()), {}, None)
        finals = {h: self.ground_truth(a) for h, a in needed.items()}
        accuracy = {h: (gt["test_accuracy"] if gt["status"] == "ok" else None) for h, gt in finals.items()}
        results: dict[str, Any] = {}
        for (setting, strategy), runs in picks.items():
            outcomes = [self._search_outcome(r, accuracy) for r in runs]
            best = [o["best_final_test_accuracy"] for o in outcomes if o["best_final_test_accuracy"] is not None]
            results[f"{setting}|{strategy}"] = {
                "evaluator": setting, "strategy": strategy, "runs": outcomes,
                "best_final_mean": statistics.mean(best) if best else None,
                "best_final_std": statistics.stdev(best) if len(best) > 1 else 0.0,
            }
        return results

    def search_path(self, setting: str, strategy: str, seed: int) -> Path:
        """The study of one equal-budget search."""
        return self.out / "searches" / f"{setting.replace('@', '_')}__{strategy}__seed{seed}.db"

    def equal_budget_searches(self) -> list[tuple[str, str, int]]:
        """Every equal-budget search as (proxy setting, strategy, seed), in the order they run."""
        eb = self.config.equal_budget
        if eb is None:
            return []
        first = {p.label: p.settings()[0][0] for p in self.config.proxies}
        return [(first.get(label, label), strategy, seed)
                for label in eb.evaluators for strategy in eb.strategies for seed in eb.seeds]

    def search_picks(self, study: Study, top_k: int, budget: float, fractions: list[float]) -> dict[str, Any]:
        """What a finished search found: its top-k and its best-so-far at each fraction of the budget."""
        trials = [t for t in study.trials() if t.finished]
        spent, best, curve = 0.0, None, []
        marks = iter(sorted(set(fractions) | {1.0}))
        mark = next(marks)
        for t in trials:
            spent += t.flops
            if t.status in ("ok", "cached") and t.score is not None and (best is None or t.score > best.score):
                best = t
            while mark is not None and spent >= mark * budget:
                curve.append({"fraction": mark, "flops": spent, "hash": best.hash if best else None})
                mark = next(marks, None)
        if mark is not None:  # the search stopped (e.g. the space ran out) before the last mark
            curve.append({"fraction": mark, "flops": spent, "hash": best.hash if best else None})
        by_hash = {t.hash: t for t in trials}
        top = study.best(top_k)
        chosen = {t.hash: t for t in top + [by_hash[c["hash"]] for c in curve if c["hash"]]}
        archs = [self.space.architecture_from_mapping(t.genotype, where=f"study {study.path}") for t in chosen.values()]
        return {"study": str(study.path), "trials": len(trials), "flops": spent, "curve": curve, "archs": archs,
                "top": [{"hash": t.hash, "proxy_score": t.score} for t in top]}

    @staticmethod
    def _search_outcome(picks: dict[str, Any], accuracy: dict[str, float | None]) -> dict[str, Any]:
        """A search's picks with the final test accuracy of each."""
        curve = [{**c, "final_test_accuracy": accuracy.get(c["hash"]) if c["hash"] else None} for c in picks["curve"]]
        top = [{**t, "final_test_accuracy": accuracy.get(t["hash"])} for t in picks["top"]]
        top_finals = [t["final_test_accuracy"] for t in top if t["final_test_accuracy"] is not None]
        return {"study": picks["study"], "trials": picks["trials"], "flops": picks["flops"], "top": top,
                "best_final_test_accuracy": max(top_finals) if top_finals else None, "curve": curve}

    # -- everything -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Everything, holding the comparison's lock (a second run on the same ``out`` is refused)."""
        with StudyLock(self.out / "compare.db", what="comparison"):
            return self._run()

    def _run(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        archs = self.architectures()
        settings = self.config.settings()
        bar = tqdm(total=len(archs) * (1 + len(settings)), disable=not self.progress, desc="compare",
                   unit="eval", dynamic_ncols=True)
        evaluators = self.proxy_evaluators()
        if self.config.workers > 1:
            self.compute_in_parallel(archs, evaluators, bar)
            bar.reset()
            bar.disable = True  # the rest is read from the store
        truths = []
        for arch in archs:
            truths.append(self.ground_truth(arch))
            bar.update(1)
        proxies = self.proxy_results(archs, evaluators, bar)
        bar.close()
        table = self.correlations(archs, truths, proxies)
        results = {
            "config": self.config.model_dump(mode="json"), "dataset": self.data.name,
            "architectures": [a.hash for a in archs],
            "ground_truth": [{"hash": a.hash, **t} for a, t in zip(archs, truths)],
            "proxy_scores": {s: [r.get("score") for r in rows] for s, rows in proxies.items()},
            "noise_ceiling": asdict(self.noise_ceiling(truths)),
            "table": table, "speedup": self.speedups(table), "equal_budget": None,
            "equal_budget_pending": self.config.equal_budget is not None,
            "ground_truth_seconds": sum(t.get("seconds", 0.0) for t in truths),
            "proxy_devices": dict(devices_of(r.get("metrics") for rows in proxies.values() for r in rows)),
        }
        write_tables(self.out, archs, truths, len(self.gt_keys), proxies)
        if self.config.equal_budget is not None:
            # the searches and the final trainings of their picks come last and take hours: report
            # everything else first (rewritten when they finish)
            self._write_results(results)
            results = {**results, "equal_budget": self.equal_budget(), "equal_budget_pending": False}
        return self._write_results(results)

    def _write_results(self, results: dict[str, Any]) -> dict[str, Any]:
        """Judge the targets, then write results.json, report.md and the plots; returns ``results``."""
        from gtn_search.compare.report import write_report

        if self.config.targets is not None:
            results["targets"] = judge(results, self.config.targets.model_dump())
        write_text_atomic(self.out / "results.json", json.dumps(results, indent=2, default=str))
        write_report(results, self.out)
        return results


def combine_replicates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One ground-truth row from replicate rows (see :meth:`Comparison.ground_truth`)."""
    if len(rows) == 1:
        return rows[0]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        return {**failed[0], "status": "failed", "replicates": len(rows)}
    accuracies = [r["test_accuracy"] for r in rows]
    return {**rows[0], "test_accuracy": statistics.fmean(accuracies), "replicate_accuracies": accuracies,
            "seconds": sum(r.get("seconds", 0.0) for r in rows), "replicates": len(rows)}


def _ground_truth_result(arch: Architecture, blueprint: Blueprint, data: Any, recipe: TrainConfig, run_dir: Path,
                         seed: int) -> dict[str, Any]:
    """Final training of one architecture as a store row (a diverging training is a failed row)."""
    try:
        result = train_final(arch, blueprint, data, recipe, run_dir, seed).to_dict()
        result["status"] = "ok"
    except TrainingError as exc:
        result = {"error": str(exc), "status": "failed"}
    return result


#: how many times a comparison job may kill the worker it runs alone in before it is recorded as failed
MAX_WORKER_DEATHS = 2


@dataclass
class _Job:
    """One ground-truth training or proxy evaluation of :meth:`Comparison.compute_in_parallel`."""

    kind: str  # "gt" or "proxy"
    what: Any  # the ground truth's store key, or the proxy settings the job computes
    arch_hash: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    deaths: int = 0

    def failure(self) -> dict[str, Any]:
        """The failed row(s) of a job whose worker died each time it ran alone."""
        error = (f"the worker process died each of the {self.deaths} times this ran alone (killed for memory, or "
                 f"a crash); recorded as failed")
        if self.kind == "gt":
            return {"status": "failed", "error": error}
        row = EvalResult("failed", error=error).to_dict()
        return row if len(self.what) == 1 else {steps: row for steps in self.args[-1]}


def _run_alone(job: _Job, threads: int, gpus: list[str]) -> Any:
    """``job``'s result from a pool of one worker, tried up to MAX_WORKER_DEATHS times; ``None`` if
    the worker died every time (``job.deaths`` counts them)."""
    import concurrent.futures as cf

    from gtn_search.executors import COMPARISON_PRELOAD, kill_workers, local_pool

    while job.deaths < MAX_WORKER_DEATHS:
        pool = local_pool(1, threads, gpus, preload=COMPARISON_PRELOAD)
        try:
            return pool.submit(job.fn, *job.args).result()
        except cf.process.BrokenProcessPool:
            job.deaths += 1
        except BaseException:
            kill_workers(pool)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    return None


#: evaluators already set up in this worker process, by their settings
_WORKER_EVALUATORS: dict[str, Any] = {}


def _ground_truth_job(arch: Architecture, blueprint: Blueprint, data_spec: tuple[str, str | None, int | None],
                      recipe: TrainConfig, run_dir: Path, seed: int) -> dict[str, Any]:
    dataset, data_root, limit = data_spec
    return _ground_truth_result(arch, blueprint, load_dataset(dataset, data_root, limit=limit), recipe, run_dir, seed)


def _proxy_job(name: str, options: dict[str, Any], data_root: str | None, base_dir: str | None, arch: Architecture,
               blueprint: Blueprint, seed: int, device: str,
               sweep: list[int] | None = None) -> dict[str, Any] | dict[int, dict[str, Any]]:
    """One proxy evaluation in a worker: its row, or with ``sweep`` (step counts) one row per step count."""
    key = digest({"name": name, "options": options, "data_root": data_root, "base_dir": base_dir})
    if key not in _WORKER_EVALUATORS:
        evaluator = make_evaluator(name, options, data_root, device, base_dir)
        evaluator.setup()
        _WORKER_EVALUATORS[key] = evaluator
    evaluator = _WORKER_EVALUATORS[key]
    if sweep is not None:
        return {s: r.to_dict() for s, r in evaluator.evaluate_sweep(arch, blueprint, seed, sweep).items()}
    return evaluator.evaluate(arch, blueprint, seed).to_dict()


def run_compare(config: CompareConfig, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) the comparison described by ``config``; writes report.md, PNGs, results.json."""
    return Comparison(config, progress).run()
