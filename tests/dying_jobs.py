"""Ground-truth jobs that kill their worker process (importable by spawned workers, for test_compare.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gtn_search.compare.run import _ground_truth_job


def ground_truth_that_kills_its_worker(arch: Any, *args: Any) -> dict[str, Any]:
    """The ground-truth job, except for the architecture named in ``GTN_TEST_KILL``: its worker
    dies on its first ``GTN_TEST_KILL_TIMES`` attempts (counted in files under ``GTN_TEST_KILL_DIR``)."""
    if arch.hash == os.environ["GTN_TEST_KILL"]:
        attempts = Path(os.environ["GTN_TEST_KILL_DIR"])
        n = len(list(attempts.iterdir()))
        (attempts / str(n)).touch()
        if n < int(os.environ["GTN_TEST_KILL_TIMES"]):
            os._exit(1)
    return _ground_truth_job(arch, *args)
