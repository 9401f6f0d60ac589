"""gtn_search.host_memory: freed memory stays in the process (glibc), and the switch to keep defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import sys
from gtn_search.host_memory import retain_freed_memory, retaining_freed_memory
assert not retaining_freed_memory()
print(retain_freed_memory(), retain_freed_memory(), retaining_freed_memory())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
@pytest.mark.parametrize(("env", "expected"), [({}, "True True True"), ({"GTN_SEARCH_RETAIN_MEMORY": "0"}, "False False False")])
def test_training_processes_keep_freed_memory_unless_switched_off(env, expected, monkeypatch):
    import os

    child_env = {k: v for k, v in os.environ.items() if k != "GTN_SEARCH_RETAIN_MEMORY"} | env
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=child_env, check=True)
    assert out.stdout.split("\n")[0] == expected


def test_every_training_path_switches_it_on():
    """Evaluators, meta-training and final training all enter device_settings, which applies it."""
    import torch

    from gtn_search import host_memory
    from gtn_search.device import device_settings

    with device_settings(torch.device("cpu")):
        pass
    assert host_memory.retaining_freed_memory() == (sys.platform.startswith("linux")
                                                     and host_memory.retain_freed_memory())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_dask_s_trim_variable_is_reported_only_where_it_is_not_overridden(monkeypatch):
    from gtn_search.executors import malloc_trim_setting

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert malloc_trim_setting() is None  # the worker's first trial overrides it
    monkeypatch.setenv("GTN_SEARCH_RETAIN_MEMORY", "0")
    assert malloc_trim_setting() == "65536"
