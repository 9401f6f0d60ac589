"""The suite is hermetic: no network, an empty cache, no data root from the environment (issue 12)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_socket import SocketConnectBlockedError

from gtn_search.data import ENV_DATA_ROOT, ENV_OFFLINE, load_dataset, resolve_data_root
from gtn_search.errors import DatasetError


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_a_test_that_touches_the_network_fails_loudly() -> None:
    # 192.0.2.1 is TEST-NET-1 (RFC 5737): never routed, so only the guard can make this fail at once
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


def test_loopback_stays_open_for_local_clusters() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    with server, socket.create_connection(server.getsockname(), timeout=5):
        pass


def test_the_cache_is_a_fresh_folder_and_no_data_root_comes_from_the_environment(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = Path(os.environ["XDG_CACHE_HOME"])
    assert cache.is_relative_to(tmp_path_factory.getbasetemp())
    assert ENV_DATA_ROOT not in os.environ
    assert resolve_data_root() == cache / "gtn-search" / "data"
    assert os.environ.get(ENV_OFFLINE) == "1"


def test_offline_mode_never_downloads_and_says_so(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=rf"downloading is off \(\${ENV_OFFLINE} is set\)"):
        load_dataset("mnist", tmp_path / "empty", download=True)


def test_a_cli_subprocess_inherits_offline_mode(tmp_path: Path) -> None:
    """A command run as a subprocess (outside the socket guard) cannot download either."""
    res = subprocess.run([sys.executable, "-m", "gtn_search", "gtn", "eval", "missing.pt"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 1 and "missing.pt" in res.stderr
    script = ("from gtn_search.data import load_dataset\n"
              "load_dataset('fashion_mnist')\n")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode != 0 and f"${ENV_OFFLINE} is set" in res.stderr


def test_tests_compute_with_one_thread_and_parallel_test_processes_share_the_cores() -> None:
    import torch

    assert torch.get_num_threads() == 1  # tests/conftest.py, whatever OMP_NUM_THREADS said
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # the commands tests start as subprocesses get their share of the cores
        assert os.environ["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // workers))
        probe = "import torch; print(torch.get_num_threads())"
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        assert int(out) == max(1, (os.cpu_count() or 1) // workers)
