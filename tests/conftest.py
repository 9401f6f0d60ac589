"""Shared pytest fixtures.

Real data: the official MNIST-family archives (torchvision layout, ``<dir>/MNIST/raw/*.gz``) are
kept read-only in ``$GTN_SEARCH_TEST_DATA``, or by default in the repository's sibling folder
``../shared/data``. Tests that need them are skipped when they are absent; tests never download.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Environment variable overriding where the read-only test archives live.
ENV_TEST_DATA = "GTN_SEARCH_TEST_DATA"


def _shared_data_location() -> Path:
    """``$GTN_SEARCH_TEST_DATA``, else ``<repo>/../shared/data``."""
    configured = os.environ.get(ENV_TEST_DATA)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[2] / "shared" / "data"


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
