"""Where trials run: in this process, in local worker processes, or on a Dask cluster.

Every executor takes ``submit(number, evaluator, arch, blueprint, seed)`` and hands back finished
trials from ``wait()``; the runner never knows which one it talks to. Worker processes run one
torch thread each by default (``threads_per_worker``). A worker process that dies takes only its
trial down: the trial is reported failed with the reason and the pool is rebuilt. Local workers die
with the process that started them, even when it is killed with SIGKILL (see :func:`local_pool`).
Local workers are forked from a fork server that imported torch and gtn-search once, so a pool (also
one rebuilt after a worker died) starts in a fraction of a second (:func:`worker_context`).
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from typing import Any

from gtn_search.device import init_gpu_worker, spreads_over_gpus, visible_gpus
from gtn_search.errors import ConfigError, EnvironmentSettingError
from gtn_search.evaluators.base import EvalResult, Evaluator
from search_spaces.architecture import Architecture
from search_spaces.blueprint import Blueprint

Finished = tuple[int, EvalResult, str]
log = logging.getLogger("gtn_search.executors")

#: Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory back to the OS).
#: Setting it switches off glibc's dynamic mmap threshold, so every tensor above 128 KiB is mmapped
#: and unmapped afresh: a GTN-evaluator trial takes 8.1 s instead of 3.1 s (benchmarks/dask_malloc.py).
#: Workers now override it at their first trial (``gtn_search.host_memory``) unless
#: ``GTN_SEARCH_RETAIN_MEMORY=0``; only then does the warning below apply.
DASK_MALLOC_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def _set_threads(threads: int) -> int:
    """Run torch with ``threads`` intra-op threads from now on; return the count it had before."""
    import torch

    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    return before


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_trial(evaluator: Evaluator, arch: Architecture, blueprint: Blueprint, seed: int, threads: int) -> tuple[EvalResult, str]:
    """Evaluate one candidate (the function every executor ships to its workers)."""
    _set_threads(threads)
    return evaluator.evaluate(arch, blueprint, seed), worker_name()


def malloc_trim_setting() -> str | None:
    """This process's ``MALLOC_TRIM_THRESHOLD_`` where it will slow training (run on Dask workers to
    check their set-up); ``None`` if unset or overridden by ``gtn_search.host_memory``."""
    from gtn_search.host_memory import retention_enabled

    return None if retention_enabled() else os.environ.get("MALLOC_TRIM_THRESHOLD_")


def slow_malloc_warning(settings: dict[str, str | None]) -> str | None:
    """A warning naming the Dask workers that run with a malloc trim threshold (``None`` if none)."""
    slow = sorted(w for w, v in settings.items() if v is not None)
    if not slow:
        return None
    return (f"{len(slow)} of {len(settings)} Dask workers run with MALLOC_TRIM_THRESHOLD_="
            f"{settings[slow[0]]} (Dask's default), which makes PyTorch training 2-3x slower; set "
            f"'{DASK_MALLOC_KEY}: null' in the workers' Dask config (dask.yaml) and restart them")


#: prctl(2) option: the signal this process gets when the thread that started it exits.
_PR_SET_PDEATHSIG = 1
#: How often a worker checks that its parent is still alive (the portable fallback to prctl).
PARENT_POLL_SECONDS = 0.5


#: What a forked worker of a search needs imported; the fork server imports it once, so a worker
#: starts in a fraction of a second instead of the seconds that importing torch and torchvision take.
TRIAL_PRELOAD = ("torchvision.datasets", "gtn_search.evaluators")
#: The same for a comparison's workers, which also run final trainings (its ground truth) and its
#: jobs (more to import, scipy among it, which a search's workers need not pay).
COMPARISON_PRELOAD = (*TRIAL_PRELOAD, "gtn_search.final_train", "gtn_search.compare.run")


#: Environment variable choosing how local workers start ('forkserver', the default, or 'spawn').
ENV_START_METHOD = "GTN_SEARCH_START_METHOD"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (the pid was reused)
        return False
    return True


def _watch_parent(parent: int, direct_parent: int) -> None:
    """Kill this process as soon as ``parent`` (the process that asked for it) has died, or this
    process was re-parented (the process that forked it died)."""
    while os.getppid() == direct_parent and _alive(parent):
        time.sleep(PARENT_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def _init_worker(parent: int, started_by_main_thread: bool, threads: int, counter: Any, gpus: Sequence[str],
                 environ: dict[str, str] | None = None) -> None:
    """Initializer of every local worker process: die with the parent, run ``threads`` torch threads,
    take the next GPU of ``gpus`` round-robin (:func:`~gtn_search.device.init_gpu_worker`).

    On Linux the kernel sends SIGKILL the moment the process that started the worker dies
    (``PR_SET_PDEATHSIG``; it fires when the *thread* that started the worker exits: a forked worker's
    starter is the fork server's main thread, which exits when ``parent`` dies; a spawned worker's is
    ``parent``'s thread that made the pool, so it is used only when that was the main thread);
    everywhere, a daemon thread polls ``parent`` as a fallback. ``environ`` (a forked worker's) is the
    parent's environment now, which replaces the one the fork server was started with.
    """
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    forked = environ is not None
    if (forked or started_by_main_thread) and sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    direct_parent = os.getppid()
    if (not forked and direct_parent != parent) or not _alive(parent):  # died before the watch was set up
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch_parent, args=(parent, direct_parent), name="watch-parent", daemon=True).start()
    _set_threads(threads)
    if gpus:
        init_gpu_worker(counter, gpus)


def worker_context(preload: Sequence[str] = TRIAL_PRELOAD) -> multiprocessing.context.BaseContext:
    """How local workers start: forked from a fork server that has imported ``preload`` (POSIX),
    else spawned. ``GTN_SEARCH_START_METHOD=spawn`` forces spawning. A process has one fork server:
    the preload of the first pool (or :func:`start_worker_server`) holds for all its pools; a module
    it lacks is imported by each worker that needs it."""
    method = os.environ.get(ENV_START_METHOD, "").strip()
    if method not in ("", "forkserver", "spawn"):
        raise EnvironmentSettingError(f"{ENV_START_METHOD}={method!r} is not a way to start workers: unset it, "
                                      f"or set it to 'forkserver' or 'spawn'")
    if method in ("", "forkserver") and "forkserver" not in multiprocessing.get_all_start_methods():
        method = "spawn"
    method = method or "forkserver"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(list(preload))  # no effect once the server runs
    return context


def start_worker_server(preload: Sequence[str] = TRIAL_PRELOAD) -> None:
    """Start the fork server now, when local workers will be forked from it, so that its imports run
    beside this process's own set-up (reading the dataset) instead of delaying the first pool."""
    if worker_context(preload).get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def uses_local_workers(kind: str, workers: int, trial_timeout: float | None = None) -> bool:
    """Whether :func:`make_executor` makes a pool of local worker processes for these settings."""
    return kind != "dask" and (workers > 1 or trial_timeout is not None)


def local_pool(workers: int, threads: int, gpus: Sequence[str] = (), counter: Any = None,
               preload: Sequence[str] = TRIAL_PRELOAD) -> cf.ProcessPoolExecutor:
    """A pool of ``workers`` local processes (:func:`worker_context` with ``preload``) running ``threads``
    torch threads each, which die with this process (SIGKILL included); use it from the thread that
    created it. With ``gpus``, each worker takes the next one (``counter``, a shared ``Value('i')`` of
    :func:`worker_context`, keeps counting across rebuilt pools)."""
    started_by_main_thread = threading.current_thread() is threading.main_thread()
    context = worker_context(preload)
    if gpus and counter is None:
        counter = context.Value("i", 0)
    environ = dict(os.environ) if context.get_start_method() == "forkserver" else None
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                  initargs=(os.getpid(), started_by_main_thread, threads, counter, list(gpus),
                                            environ))


def kill_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Kill every worker process of ``pool`` now (their tasks are abandoned) and reap them."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.join(timeout=5)


def _warm_up(threads: int) -> None:
    """Import what trials need in a fresh worker (its start-up is then not part of a trial's time;
    a forked worker has it already)."""
    import importlib

    for name in TRIAL_PRELOAD:
        importlib.import_module(name)

    _set_threads(threads)
    time.sleep(0.2)  # hold this worker so that the next warm-up task starts another one


class Executor(ABC):
    """Runs trials; ``capacity`` of them at once."""

    capacity: int = 1

    @abstractmethod
    def submit(self, number: int, evaluator: Evaluator, arch: Architecture, blueprint: Blueprint, seed: int) -> None:
        ...

    @abstractmethod
    def wait(self) -> list[Finished]:
        """Block until at least one submitted trial has finished; return all finished ones."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        ...

    def shutdown(self) -> None:
        """Release workers (running trials are abandoned; the study re-runs them on resume)."""


class InlineExecutor(Executor):
    """Runs each trial in this process at submit time (sequential, deterministic, no overhead)."""

    def __init__(self, threads: int | None = None) -> None:
        self.capacity = 1
        self.threads = threads
        self._threads_before: int | None = None  # this process's torch thread count, restored by shutdown()
        self._done: deque[Finished] = deque()

    def submit(self, number: int, evaluator: Evaluator, arch: Architecture, blueprint: Blueprint, seed: int) -> None:
        if self.threads:
            before = _set_threads(self.threads)
            if self._threads_before is None:
                self._threads_before = before
        self._done.append((number, evaluator.evaluate(arch, blueprint, seed), worker_name()))

    def wait(self) -> list[Finished]:
        out = list(self._done)
        self._done.clear()
        return out

    @property
    def in_flight(self) -> int:
        return len(self._done)

    def shutdown(self) -> None:
        """Give this process back the torch thread count it had before the first trial."""
        if self._threads_before is not None:
            _set_threads(self._threads_before)
            self._threads_before = None


class ProcessExecutor(Executor):
    """A pool of local worker processes (:func:`worker_context`; one torch thread each by default).

    With ``trial_timeout`` a trial still running after that many seconds is recorded as failed
    ("timed out"); its worker is killed, the pool rebuilt and the other in-flight trials are
    started again on the new pool (they were not at fault; same seeds, so the same results). A
    worker that dies (``os._exit``, a segfault, the OOM killer) fails the trials of that pool with
    the reason, and the pool is rebuilt.
    """

    def __init__(self, workers: int, threads_per_worker: int | None = 1, trial_timeout: float | None = None,
                 gpus: Sequence[str] = ()) -> None:
        self.capacity = workers
        self.threads = threads_per_worker or 1
        self.trial_timeout = trial_timeout
        self.gpus = list(gpus)  # round-robin over the workers (CUDA_VISIBLE_DEVICES), shared when fewer
        self._worker_counter = worker_context().Value("i", 0)
        self._futures: dict[cf.Future, tuple[int, tuple[Any, ...], float]] = {}
        self._reported: list[Finished] = []  # outcomes found outside wait(), handed out by the next wait()
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        pool = local_pool(self.capacity, self.threads, self.gpus, self._worker_counter)
        if self.trial_timeout is not None:  # start the workers now, so that start-up is not timed
            cf.wait([pool.submit(_warm_up, self.threads) for _ in range(self.capacity)])
        return pool

    def submit(self, number: int, evaluator: Evaluator, arch: Architecture, blueprint: Blueprint, seed: int) -> None:
        self._start(number, (evaluator, arch, blueprint, seed, self.threads))

    def _start(self, number: int, args: tuple[Any, ...]) -> None:
        try:
            fut = self._pool.submit(run_trial, *args)
        except cf.process.BrokenProcessPool:  # a worker died since the last wait(): settle its pool first
            self._reported.extend(self._settle_broken_pool())
            fut = self._pool.submit(run_trial, *args)
        self._futures[fut] = (number, args, time.monotonic())

    def _settle_broken_pool(self) -> list[Finished]:
        """Outcomes of every trial of a pool whose worker died (those that finished first keep their
        result, the rest fail with the reason), then a fresh pool."""
        out: list[Finished] = []
        for fut, (number, _, _) in self._futures.items():
            try:
                result, worker = fut.result(timeout=0) if fut.done() else (None, "?")
            except (cf.process.BrokenProcessPool, cf.CancelledError):
                result, worker = None, "?"
            if result is None:
                result = EvalResult("failed", error="worker process died during the trial")
            out.append((number, result, worker))
        self._futures.clear()
        self._rebuild(kill=False)
        return out

    def _rebuild(self, kill: bool) -> None:
        if kill:  # a hung worker never returns: stop every process of the old pool
            kill_workers(self._pool)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def wait(self) -> list[Finished]:
        if self._reported:
            out, self._reported = self._reported, []
            return out
        timeout = None
        if self.trial_timeout is not None and self._futures:
            first_deadline = min(start for _, _, start in self._futures.values()) + self.trial_timeout
            timeout = max(0.0, first_deadline - time.monotonic())
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out: list[Finished] = []
        broken = False
        for fut in done:
            number = self._futures.pop(fut)[0]
            try:
                result, worker = fut.result()
            except cf.process.BrokenProcessPool:
                broken = True
                result, worker = EvalResult("failed", error="worker process died during the trial"), "?"
            out.append((number, result, worker))
        if broken:  # the other trials of the dead pool are lost too: report them, rebuild the pool
            return out + self._settle_broken_pool()
        if self.trial_timeout is not None:
            now = time.monotonic()
            expired = {f for f, (_, _, start) in self._futures.items() if now - start >= self.trial_timeout}
            if expired:
                innocent = [(n, args) for f, (n, args, _) in self._futures.items() if f not in expired]
                for f in expired:
                    number = self._futures[f][0]
                    out.append((number, EvalResult("failed", error=f"timed out after {self.trial_timeout:g} s "
                                                   f"(trial_timeout); the worker was killed",
                                                   wall_seconds=now - self._futures[f][2]), "?"))
                self._futures.clear()
                self._rebuild(kill=True)
                for number, args in innocent:
                    self._start(number, args)
        return out

    @property
    def in_flight(self) -> int:
        return len(self._futures) + len(self._reported)

    def shutdown(self) -> None:
        """Stop the workers; trials still running are abandoned (and killed, not waited for)."""
        if self._futures:
            kill_workers(self._pool)
            self._futures.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


class DaskExecutor(Executor):
    """Trials on a Dask cluster: a running scheduler (``tcp://host:port``) or a LocalCluster."""

    def __init__(self, workers: int, scheduler: str | None = None, threads_per_worker: int | None = 1) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("executor 'dask' needs dask.distributed: pip install 'gtn-search[distributed]'") from None
        self.threads = threads_per_worker or 1
        self._cluster = None
        if scheduler:
            try:
                self._client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise ConfigError(f"cannot reach Dask scheduler {scheduler}: {exc}") from None
            self.capacity = max(workers, 1)
        else:
            import dask

            with dask.config.set({DASK_MALLOC_KEY: None}):  # see DASK_MALLOC_KEY
                self._cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                             dashboard_address=None, silence_logs=40)
            self._client = Client(self._cluster)
            self.capacity = workers
        try:
            warning = slow_malloc_warning(self._client.run(malloc_trim_setting))
        except Exception:  # noqa: BLE001 - a check, never a reason to fail
            warning = None
        if warning:
            log.warning(warning)
        self._futures: dict[Any, int] = {}

    def submit(self, number: int, evaluator: Evaluator, arch: Architecture, blueprint: Blueprint, seed: int) -> None:
        fut = self._client.submit(run_trial, evaluator, arch, blueprint, seed, self.threads, pure=False, retries=1)
        self._futures[fut] = number

    def wait(self) -> list[Finished]:
        from distributed import wait as dask_wait

        done, _ = dask_wait(list(self._futures), return_when="FIRST_COMPLETED")
        out: list[Finished] = []
        for fut in done:
            number = self._futures.pop(fut)
            try:
                result, worker = fut.result()
            except Exception as exc:  # killed worker after retries, lost data...
                from gtn_search.errors import GTNSearchError

                if isinstance(exc, GTNSearchError):
                    raise
                result, worker = EvalResult("failed", error=f"Dask task failed: {type(exc).__name__}: {exc}"), "?"
            out.append((number, result, worker))
        return out

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    def shutdown(self) -> None:
        for fut in self._futures:
            fut.cancel()
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def cores_per_process(processes: int) -> int:
    """This machine's cores shared among ``processes`` processes (at least one each)."""
    return max(1, (os.cpu_count() or 1) // processes)


def make_executor(kind: str, workers: int, scheduler: str | None, threads_per_worker: int | None,
                  trial_timeout: float | None = None, device: str | None = "cpu") -> Executor:
    """The executor a search config asks for; by default the cores are shared among the workers.

    A ``trial_timeout`` needs a process it can kill, so it runs even a single worker in a process.
    Local workers on ``device`` auto/cuda with CUDA present each get a GPU, round-robin over the
    visible ones (several workers share a GPU when there are fewer GPUs). Dask workers use the GPU
    their worker process sees (start them with dask-cuda: one worker per GPU).
    """
    if threads_per_worker is None and workers > 1:
        threads_per_worker = cores_per_process(workers)
    if kind == "dask":
        if trial_timeout is not None:
            raise ConfigError("trial_timeout works with local workers only; with executor 'dask' leave it out "
                              "(a Dask task cannot be killed from the client)")
        return DaskExecutor(workers, scheduler, threads_per_worker)
    if not uses_local_workers(kind, workers, trial_timeout):
        return InlineExecutor(threads_per_worker)
    gpus = visible_gpus() if spreads_over_gpus(device) else []
    return ProcessExecutor(workers, threads_per_worker, trial_timeout, gpus)
