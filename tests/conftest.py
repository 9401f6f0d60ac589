"""Shared pytest fixtures.

Hermetic by construction: every run gets an empty cache folder (``$XDG_CACHE_HOME`` in the
session's tmp folder), no data root from the environment, and ``$GTN_SEARCH_OFFLINE=1`` so that
nothing downloads, even in subprocesses; pytest-socket (``addopts`` in pyproject.toml) makes any
connection to a host other than loopback fail the test.

Real data: the official MNIST-family archives (torchvision layout, ``<dir>/MNIST/raw/*.gz``) are
kept read-only in ``$GTN_SEARCH_TEST_DATA``, or by default in the repository's sibling folder
``../shared/data`` (or ``/work/shared/data``). Tests that need them are skipped when they are absent; tests never download.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Environment variable overriding where the read-only test archives live.
ENV_TEST_DATA = "GTN_SEARCH_TEST_DATA"


def _shared_data_location() -> Path:
    """``$GTN_SEARCH_TEST_DATA``, else ``<repo>/../shared/data``, else ``/work/shared/data``."""
    configured = os.environ.get(ENV_TEST_DATA)
    if configured:
        return Path(configured).expanduser()
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


@pytest.fixture(scope="session", autouse=True)
def hermetic_environment(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """An empty cache, no ``$GTN_SEARCH_DATA``, downloads off: what a machine that never ran us has."""
    from gtn_search.data import ENV_DATA_ROOT, ENV_OFFLINE, clear_cache

    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        env.delenv(ENV_DATA_ROOT, raising=False)
        env.setenv(ENV_OFFLINE, "1")
        share = _threads_per_test_process()
        if share is not None:  # commands started as subprocesses share the cores the same way
            env.setenv("OMP_NUM_THREADS", str(share))
        clear_cache()
        yield


def _threads_per_test_process() -> int | None:
    """The cores each of pytest-xdist's parallel workers may use (None: not a parallel run)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return None
    from gtn_search.executors import cores_per_process

    return cores_per_process(workers)


def pytest_configure(config: pytest.Config) -> None:
    """Tests compute with one torch thread, as they always have (the figures pinned in
    ``tests/recorded_numbers.py`` were recorded so); the suite runs tests in parallel processes
    instead (pytest-xdist, ``-n`` in ``addopts``): on the small networks of tests, a second core
    gains far more as a second process than as a second thread."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The read-only folder with the official archives; skips the test when it is missing."""
    path = _shared_data_location()
    if not path.is_dir():
        pytest.skip(
            f"no shared test data at {path}; set {ENV_TEST_DATA} to a folder with MNIST/raw/*.gz"
        )
    return path


@pytest.fixture(scope="session")
def mnist_root(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable data root with the shared ``*/raw/*.gz`` archives symlinked in.

    Session-scoped so torchvision extracts each archive once per test run, into a tmp folder.
    Skips the test when the MNIST archives are missing.
    """
    if not (shared_data_dir / "MNIST" / "raw").is_dir():
        pytest.skip(f"no MNIST archives in {shared_data_dir / 'MNIST' / 'raw'}")
    root = tmp_path_factory.mktemp("mnist_root")
    for archive in sorted(shared_data_dir.glob("*/raw/*.gz")):
        link = root / archive.relative_to(shared_data_dir)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(archive.resolve())
    return root


@pytest.fixture(scope="session")
def toy_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The throw-away plugin package in ``tests/data/toy_plugin``, pip-installed into a tmp folder.

    Installed for real (``pip install --target``, no network, no build isolation), added to
    ``sys.path``, and the strategy registry is told to re-read entry points, so the plugin's
    strategy is discovered from its package metadata exactly as a user's package would be.
    """
    import importlib
    import subprocess
    import sys

    from gtn_search.registry import STRATEGIES

    target = tmp_path_factory.mktemp("site")
    source = Path(__file__).parent / "data" / "toy_plugin"
    build = tmp_path_factory.mktemp("build")
    import shutil

    shutil.copytree(source, build / "toy_plugin")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--no-index",
         "--target", str(target), str(build / "toy_plugin")],
        check=True, capture_output=True, text=True,
    )
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    STRATEGIES._loaded = False
    return target


@pytest.fixture(scope="session")
def tiny_teaching_set(mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teaching set from two meta-iterations of a tiny GTN on MNIST (for search tests)."""
    from gtn_search.data import load_dataset
    from gtn_search.gtn.config import load_config
    from gtn_search.gtn.meta_train import MetaTrainer

    config = load_config(None, {
        "generator": {"noise_dim": 8, "hidden": 32, "channels": 8}, "inner_steps": 3, "inner_batch": 16,
        "learner": {"kind": "nas", "blueprint": {"channels": 2, "stages": 1, "cells_per_stage": 1,
                                                  "stem_multiplier": 2}},
        "meta_iterations": 2, "meta_batch": 16, "inner_lr": 0.1, "monitor_every": 0, "intermediate_every": 0,
    })
    trainer = MetaTrainer(config, load_dataset("mnist", mnist_root))
    trainer.run(progress=False)
    return trainer.teaching_set().save(tmp_path_factory.mktemp("teach") / "teaching_set.pt")
