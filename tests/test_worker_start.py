"""Local worker processes are forked from a fork server that has imported what trials need, and
still behave like freshly spawned ones: the parent's current environment, folder and import path,
one process group of cleanup (see tests/test_search.py for dying with the parent)."""

from __future__ import annotations

import os
import sys

import pytest

from gtn_search import executors


def _worker_view(name: str) -> tuple[str | None, str, bool, int, bool]:
    return (os.environ.get(name), os.getcwd(), "gtn_search.evaluators" in sys.modules, os.getppid(),
            "tests.test_worker_start" in sys.modules)


needs_forkserver = pytest.mark.skipif("forkserver" not in __import__("multiprocessing").get_all_start_methods(),
                                      reason="no fork server on this platform")


@needs_forkserver
def test_workers_are_forked_with_what_trials_need_already_imported(monkeypatch):
    monkeypatch.delenv("GTN_SEARCH_START_METHOD", raising=False)
    assert executors.worker_context().get_start_method() == "forkserver"
    pool = executors.local_pool(1, 1)
    try:
        _, _, preloaded, ppid, _ = pool.submit(_worker_view, "HOME").result(timeout=120)
    finally:
        pool.shutdown()
    assert preloaded
    assert ppid != os.getpid()  # the fork server's child, not ours


@needs_forkserver
def test_a_forked_worker_sees_the_environment_and_folder_of_now_not_of_the_fork_server_start(
        tmp_path, monkeypatch):
    monkeypatch.delenv("GTN_SEARCH_START_METHOD", raising=False)
    monkeypatch.setenv("GTN_TEST_WORKER_VAR", "before")
    pool = executors.local_pool(1, 1)  # the fork server runs from here on
    try:
        assert pool.submit(_worker_view, "GTN_TEST_WORKER_VAR").result(timeout=120)[0] == "before"
    finally:
        pool.shutdown()
    monkeypatch.setenv("GTN_TEST_WORKER_VAR", "after")
    monkeypatch.setenv("GTN_TEST_WORKER_NEW", "new")
    monkeypatch.chdir(tmp_path)
    pool = executors.local_pool(1, 1)
    try:
        value, cwd, _, _, imported_tests = pool.submit(_worker_view, "GTN_TEST_WORKER_VAR").result(timeout=120)
        new = pool.submit(_worker_view, "GTN_TEST_WORKER_NEW").result(timeout=120)[0]
        monkeypatch.delenv("GTN_TEST_WORKER_NEW")
    finally:
        pool.shutdown()
    assert (value, new, cwd) == ("after", "new", str(tmp_path))
    assert imported_tests  # this module was unpickled in the worker: the parent's import path


def test_spawning_can_be_forced(monkeypatch):
    monkeypatch.setenv("GTN_SEARCH_START_METHOD", "spawn")
    assert executors.worker_context().get_start_method() == "spawn"

def test_an_unknown_start_method_is_one_clear_line(tmp_path, tiny_teaching_set, mnist_root, monkeypatch, capsys):
    from gtn_search.cli import main
    from gtn_search.errors import EnvironmentSettingError
    from tests.test_search import _write_config, config

    monkeypatch.setenv("GTN_SEARCH_START_METHOD", "fork")
    with pytest.raises(EnvironmentSettingError, match="GTN_SEARCH_START_METHOD='fork' is not a way to start workers"):
        executors.worker_context()
    cfg = config(tmp_path / "s", tiny_teaching_set, mnist_root, workers=2, strategy="random", budget={"trials": 2})
    path = _write_config(tmp_path / "s.yaml", cfg)
    capsys.readouterr()
    assert main(["search", str(path), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: GTN_SEARCH_START_METHOD='fork' is not a way to start workers: unset it, or set it to "
                   "'forkserver' or 'spawn'")


_PRELOAD_PROBE = r"""
import sys
from gtn_search import executors
pool = executors.local_pool(1, 1, preload=getattr(executors, sys.argv[1]))
probe = "[m in __import__('sys').modules for m in ('gtn_search.evaluators', 'gtn_search.compare.run')]"
print(pool.submit(eval, probe).result(timeout=120))
pool.shutdown()
"""


@needs_forkserver
def test_a_search_s_workers_do_not_import_the_comparison_s_modules_but_a_comparison_s_do():
    import subprocess

    env = {**os.environ, "GTN_SEARCH_START_METHOD": "forkserver"}
    runs = {name: subprocess.Popen([sys.executable, "-c", _PRELOAD_PROBE, name], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for name in ("TRIAL_PRELOAD", "COMPARISON_PRELOAD")}
    seen = {name: run.communicate(timeout=180) for name, run in runs.items()}
    assert seen["TRIAL_PRELOAD"][0].strip() == "[True, False]", seen["TRIAL_PRELOAD"][1][-2000:]
    assert seen["COMPARISON_PRELOAD"][0].strip() == "[True, True]", seen["COMPARISON_PRELOAD"][1][-2000:]
