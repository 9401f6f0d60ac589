"""Hostile input (issue 12, part 4): user mistakes are one-line errors (exit 1) caught before any
work, read-only commands never write, numbers are range-checked, messages name the file and field.

Read-only locations: tests run as root, for whom permission bits stop nothing, so an unwritable
place is one that really refuses new files to root as well: under ``/proc`` and ``/sys``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gtn_search.cli import main
from gtn_search.errors import ConfigError, StorageError
from gtn_search.storage import Study

#: A study written by gtn-search before studies were marked (application id 0), by the code of
#: commit f305877: 3 trials of random search scored by 'params'.
OLD_STUDY = Path(__file__).parent / "data" / "study_v1.db"
UNWRITABLE = ("/proc/gtn-test", "/sys/gtn-test")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    """The command's stderr: one 'error:' line (not an internal error) with every needle; nothing on stdout."""
    out, err = capsys.readouterr()
    assert out == "", out
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def write_search(tmp_path: Path, **fields: object) -> Path:
    data = {"study": str(tmp_path / "s.db"), "evaluator": "params", "blueprint": "mnist-tiny", "strategy": "random",
            "budget": {"trials": 2}}
    data.update(fields)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def old_study(tmp_path: Path) -> Path:
    path = tmp_path / "old.db"
    shutil.copy(OLD_STUDY, path)
    return path


@pytest.fixture
def arch_file(tmp_path: Path) -> Path:
    path = tmp_path / "archs.yaml"
    assert main(["space", "sample", "-n", "1", "--blueprint", "mnist-tiny", "--out", str(path)]) == 0
    return path


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a dataset or a teaching set fails the test: the error must come before any work."""
    import gtn_search.data
    import gtn_search.gtn.teaching_set

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output path was checked")

    monkeypatch.setattr(gtn_search.data, "load_dataset", forbidden)
    monkeypatch.setattr(gtn_search.gtn.teaching_set.TeachingSet, "load", forbidden)


# -- output paths -------------------------------------------------------------------------------
def test_an_existing_file_as_output_folder_is_refused_before_any_work(tmp_path, arch_file, old_study, no_work,
                                                                      capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for argv in (["train", str(arch_file), "--out", str(afile)],
                 ["export", str(old_study), "--out", str(afile)],
                 ["gtn", "train", "--out", str(afile)],
                 ["export", str(old_study), "--out", str(afile / "below")],
                 ["show", str(old_study), "--plot", str(afile / "plot.png")],
                 ["gtn", "sample", "ts.pt", "--out", str(afile / "c.png")],
                 ["quickstart", "--out", str(afile)]):
        assert main(argv) == 1, argv
        one_line_error(capsys, str(afile), "is a file", "choose another path")
    assert afile.read_text() == "keep me"


@pytest.mark.parametrize("place", UNWRITABLE)
def test_an_unwritable_output_location_is_refused_before_any_work(place, arch_file, old_study, no_work, capsys):
    for argv in (["train", str(arch_file), "--out", f"{place}/run"],
                 ["export", str(old_study), "--out", f"{place}/best"],
                 ["gtn", "train", "--out", f"{place}/gtn"],
                 ["show", str(old_study), "--plot", f"{place}/plot.png"],
                 ["gtn", "sample", "ts.pt", "--out", f"{place}/c.png"],
                 ["space", "draw", str(arch_file), "--out", f"{place}/cell.png"],
                 ["space", "sample", "--out", f"{place}/cells.yaml"]):
        assert main(argv) == 1, argv
        one_line_error(capsys, place, "cannot create files in", "choose a writable location")


def test_plot_paths_need_a_known_image_extension_and_nothing_is_written_otherwise(tmp_path, old_study, capsys):
    folder = tmp_path / "plots"
    folder.mkdir()
    cases = {str(tmp_path / "plot.xyz"): "unsupported extension '.xyz'",
             str(tmp_path / "plot"): "has no extension",
             str(folder): "is a folder, expected a file path"}
    for path, message in cases.items():
        assert main(["show", str(old_study), "--plot", path]) == 1
        assert ".png" in one_line_error(capsys, path, message)  # refused before the table is printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.db", "plots"] and not any(folder.iterdir())
    assert main(["show", str(old_study), "--plot", str(tmp_path / "plot.svg")]) == 0
    assert (tmp_path / "plot.svg").read_text().lstrip().startswith("<?xml")


def test_gtn_sample_refuses_bad_counts_and_paths_before_reading(tmp_path, no_work, capsys):
    for argv, message in ((["--per-class", "-1"], "--per-class must be >= 1, got -1"),
                          (["--steps", "0"], "--steps must be >= 1, got 0")):
        assert main(["gtn", "sample", "ts.pt", "--out", str(tmp_path / "c.png"), *argv]) == 1
        one_line_error(capsys, message)
    assert main(["gtn", "sample", "ts.pt", "--out", str(tmp_path / "c.jpg")]) == 1
    one_line_error(capsys, "c.jpg", "write a path ending in .png")
    assert not any(tmp_path.iterdir())


def test_a_teaching_set_path_that_is_a_folder_says_so(tmp_path, capsys):
    from gtn_search.evaluators.gtn_evaluator import load_teaching_set

    with pytest.raises(ConfigError, match=r"is a folder; give the file, e\.g\. .*teaching_set\.pt"):
        load_teaching_set(str(tmp_path))
    assert main(["gtn", "sample", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 1
    one_line_error(capsys, str(tmp_path), "is a folder, expected a tensor file")


# -- studies: reading never writes, foreign files are refused untouched ------------------------------
def foreign_database(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    con.execute("INSERT INTO contacts VALUES ('ada', '123')")
    con.commit()
    con.close()
    return path


def test_reading_commands_refuse_foreign_and_empty_files_without_touching_them(tmp_path, capsys):
    foreign = foreign_database(tmp_path / "contacts.db")
    empty = tmp_path / "empty.db"
    empty.touch()
    blank = tmp_path / "blank.db"  # a valid SQLite file without tables
    con = sqlite3.connect(blank)
    con.execute("VACUUM")
    con.close()
    before = {p: digest(p) for p in (foreign, empty, blank)}
    for command in (["show"], ["export", "--out", str(tmp_path / "best")]):
        assert main([command[0], str(foreign), *command[1:]]) == 1
        one_line_error(capsys, str(foreign), "another program (tables: contacts)", "left unchanged")
        assert main([command[0], str(empty), *command[1:]]) == 1
        one_line_error(capsys, str(empty), "empty file, not a gtn-search study")
        assert main([command[0], str(blank), *command[1:]]) == 1
        one_line_error(capsys, str(blank), "empty SQLite database, not a gtn-search study")
    assert {p: digest(p) for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.db", "contacts.db", "empty.db"]  # no -wal, no best/
    con = sqlite3.connect(foreign)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()


def test_a_search_refuses_a_foreign_study_file_without_touching_it(tmp_path, mnist_root, capsys):
    foreign = foreign_database(tmp_path / "contacts.db")
    before = digest(foreign)
    config = write_search(tmp_path, study=str(foreign), data_root=str(mnist_root))
    assert main(["search", str(config), "--no-progress"]) == 1
    one_line_error(capsys, str(foreign), "not a gtn-search study", "choose another 'study' path")
    assert digest(foreign) == before and sorted(p.name for p in tmp_path.iterdir()) == ["contacts.db", "s.yaml"]
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("PRAGMA application_id = 1234")  # marked by another program, no tables yet
    con.commit()
    con.close()
    with pytest.raises(StorageError, match="another program"):
        Study(other)


def test_studies_of_the_previous_version_open_and_reading_them_changes_nothing(old_study, tmp_path, capsys):
    from gtn_search.storage import APPLICATION_ID

    before = digest(old_study)
    assert main(["show", str(old_study), "--top", "2"]) == 0
    assert "strategy random, evaluator params" in capsys.readouterr().out
    assert main(["export", str(old_study), "--out", str(tmp_path / "best"), "--top", "1"]) == 0
    assert digest(old_study) == before
    study = Study(old_study, create=False)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        study.conn.execute("INSERT INTO meta VALUES ('x', 'y')")
    study.close()
    study = Study(old_study)  # a search can still resume it: opened for writing, it is migrated
    assert len(study.trials()) == 3 and study.get_meta("schema_version") == "2"
    assert study.get_meta("migrated_from") == "1"
    study.close()
    new = Study(tmp_path / "new.db")
    assert new.conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    new.close()
    empty = tmp_path / "empty.db"
    empty.touch()
    Study(empty).close()  # an empty file becomes a study when searching
    study = Study(empty, create=False)
    assert study.counts() == {}
    study.close()


def test_a_study_on_a_read_only_mount_is_shown_and_a_search_there_says_what_to_do(tmp_path, mnist_root):
    """A real read-only bind mount, in a private mount namespace (skipped where that is not allowed)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs 'unshare -m' (root) for a private read-only mount")
    source, mount = tmp_path / "src", tmp_path / "ro"
    source.mkdir()
    mount.mkdir()
    shutil.copy(OLD_STUDY, source / "s.db")
    config = write_search(tmp_path, study=str(mount / "s.db"), data_root=str(mnist_root))
    gtn = f"{sys.executable} -m gtn_search"
    script = (f"mount --bind {source} {mount} && mount -o remount,bind,ro {mount} && "
              f"{gtn} show {mount / 's.db'} --top 1; echo rc=$?; {gtn} search {config} --no-progress; echo rc=$?")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=300)
    assert "strategy random, evaluator params" in run.stdout and "rc=0\nrc=1" in run.stdout, run
    assert f"study {mount / 's.db'}: cannot create files in {mount} (Read-only file system)" in run.stderr, run
    assert run.stderr.count("\n") == 1, run.stderr
    assert sorted(p.name for p in source.iterdir()) == ["s.db"] and digest(source / "s.db") == digest(OLD_STUDY)


@pytest.mark.parametrize("place", UNWRITABLE)
def test_a_study_in_an_unwritable_place_says_what_to_do(place, tmp_path, mnist_root, capsys):
    config = write_search(tmp_path, study=f"{place}/s.db", data_root=str(mnist_root))
    assert main(["search", str(config), "--no-progress"]) == 1
    one_line_error(capsys, f"{place}/s.db", "cannot create files in", "choose a writable 'study' path")


# -- numbers -------------------------------------------------------------------------------------
def test_workers_beyond_what_the_machine_holds_are_refused(tmp_path, monkeypatch):
    from gtn_search import search_config
    from gtn_search.search_config import load_search_config, max_local_workers

    limit, machine = max_local_workers()
    cores = len(os.sched_getaffinity(0))
    assert 1 <= limit <= 4 * cores and f"{cores} cores" in machine
    monkeypatch.setattr(search_config, "max_local_workers", lambda: (8, "2 cores, 4.0 GiB of memory"))
    path = write_search(tmp_path, workers=1000)
    with pytest.raises(ConfigError, match=rf"^{path}: field 'workers': 1000 worker processes on this machine "
                                          r"\(2 cores, 4.0 GiB of memory\) .*set workers <= 8"):
        load_search_config(path)
    with pytest.raises(ConfigError, match="set workers <= 8"):
        load_search_config(write_search(tmp_path), {"workers": 9})  # --workers too
    assert load_search_config(write_search(tmp_path, workers=8)).workers == 8
    remote = write_search(tmp_path, workers=1000, executor="dask", scheduler="tcp://10.0.0.1:8786")
    assert load_search_config(remote).workers == 1000  # a remote cluster's workers are not ours to count


@pytest.mark.parametrize("text, field", [
    ("budget: {seconds: .inf}", "budget.seconds"),
    ("budget: {flops: .inf}", "budget.flops"),
    ("budget: {trials: 3, seconds: .nan}", "budget.seconds"),
    ("trial_timeout: .inf", "trial_timeout"),
])
def test_non_finite_budgets_are_refused(tmp_path, text, field):
    from gtn_search.search_config import load_search_config

    path = tmp_path / "s.yaml"
    path.write_text(f"evaluator: params\n{text}\n")
    with pytest.raises(ConfigError, match=rf"^{path}: field '{field}': Input should be a finite number"):
        load_search_config(path)


@pytest.mark.parametrize("written, hint", [
    ("trials: '5'", "write 5 without quotes"),
    ("trials: 1e3", "write 1000"),
    ("seconds: '30'", "write 30 without quotes"),
    ("flops: 1e9", "write it with a dot and a signed exponent, e.g. 1.000e+09"),
])
def test_numbers_read_as_text_get_a_hint_that_works(tmp_path, written, hint):
    from gtn_search.search_config import load_search_config

    path = tmp_path / "s.yaml"
    path.write_text(f"evaluator: params\nbudget: {{{written}}}\n")
    with pytest.raises(ConfigError, match=f"YAML reads .* as text: {re.escape(hint)}") as info:
        load_search_config(path)
    suggestion = str(info.value).split(": write ")[1].removesuffix(" without quotes").split("e.g. ")[-1]
    path.write_text(f"evaluator: params\nbudget: {{{written.split(':')[0]}: {suggestion}}}\n")
    assert load_search_config(path).budget  # the suggested spelling is accepted


def test_show_top_must_be_positive(old_study, capsys):
    assert main(["show", str(old_study), "--top", "-3"]) == 1
    one_line_error(capsys, "--top must be >= 1, got -3")


# -- config errors name the YAML file --------------------------------------------------------------
@pytest.mark.parametrize("change, field", [
    ({"space": "gtn-nasx"}, "space: unknown search space 'gtn-nasx' (did you mean 'gtn-nas'?)"),
    ({"space": {"name": "gtn-nas", "num_nodez": 3}}, "unknown field 'num_nodez' (did you mean 'num_nodes'?)"),
    ({"space": {"name": "gtn-nas", "ops": ["conv_3x4"]}}, "unknown op 'conv_3x4'"),
    ({"blueprint": "mnist-tinyy"}, "blueprint: unknown blueprint preset 'mnist-tinyy'"),
    ({"blueprint": {"input_shape": [1, 28, 28], "channels": -4}}, "blueprint: field 'channels'"),
    ({"strategy": "randomm"}, "strategy: unknown strategy 'randomm'"),
    ({"strategy": {"name": "evolution", "options": {"population": -3}}}, "'population' must be an integer >= 2"),
    ({"evaluator": "paramz"}, "evaluator: unknown evaluator 'paramz'"),
    ({"evaluator": {"name": "params", "options": {"datset": "mnist"}}}, "evaluator 'params' options: unknown field"),
    ({"evaluator": {"name": "real", "options": {"steps": -1}}}, "evaluator 'real' options: field 'steps'"),
])
def test_search_config_errors_name_the_yaml_file(tmp_path, capsys, change, field):
    path = write_search(tmp_path, **change)
    assert main(["search", str(path), "--no-progress"]) == 1
    err = one_line_error(capsys, field)
    assert err.startswith(f"error: {path}: ") and err.count(str(path)) == 1
    assert not (tmp_path / "s.db").exists()


def test_a_teaching_set_folder_in_a_search_config_is_named(tmp_path, capsys):
    path = write_search(tmp_path, evaluator={"name": "gtn", "options": {"teaching_set": str(tmp_path)}})
    assert main(["search", str(path), "--no-progress"]) == 1
    one_line_error(capsys, f"error: {path}: evaluator 'gtn': teaching set {tmp_path} is a folder")


@pytest.mark.parametrize("learner, message", [
    ({"kind": "nas", "space": "gtn-nasx"}, "learner.space: unknown search space 'gtn-nasx'"),
    ({"kind": "nas", "blueprint": {"channels": 0}}, "learner.blueprint: field 'channels'"),
])
def test_gtn_learner_errors_name_the_config_file_before_any_work(tmp_path, no_work, capsys, learner, message):
    path = tmp_path / "gtn.yaml"
    path.write_text(yaml.safe_dump({"learner": learner, "meta_iterations": 1}))
    assert main(["gtn", "train", "--config", str(path), "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    one_line_error(capsys, f"error: {path}: {message}")


@pytest.mark.parametrize("change, message", [
    ({"space": "gtn-nasx"}, "space: unknown search space 'gtn-nasx'"),
    ({"proxies": [{"label": "p", "evaluator": {"name": "params", "options": {"batch_sise": 3}}}]},
     "evaluator 'params' options: unknown field 'batch_sise' (did you mean 'batch_size'?)"),
    ({"out": "compare.yaml"}, "field 'out': {tmp}/compare.yaml: is a file, expected a folder"),  # made absolute
])
def test_compare_config_errors_name_the_yaml_file(tmp_path, mnist_root, monkeypatch, capsys, change, message):
    monkeypatch.chdir(tmp_path)
    data = {"out": "cmp", "dataset": "mnist", "blueprint": "mnist-tiny", "num_architectures": 5,
            "ground_truth": {"recipe": {"epochs": 0.004}}, "data_root": str(mnist_root), "limit": 1000,
            "proxies": [{"label": "params", "evaluator": {"name": "params"}}], **change}
    Path("compare.yaml").write_text(yaml.safe_dump(data))
    assert main(["compare", "compare.yaml", "--no-progress"]) == 1
    one_line_error(capsys, f"error: compare.yaml: {message.replace('{tmp}', str(tmp_path))}")



def test_output_piped_into_a_reader_that_stops_is_not_an_internal_error(monkeypatch, capsys):
    """`gtn-search compare X --status | head -2`: the reader closes the pipe, the command stops quietly."""

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["strategies"]) == 0
    assert capsys.readouterr().err == ""
