"""``gtn-search space`` and ``gtn-search plugins`` from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gtn_search.cli import main
from search_spaces.yaml_format import load_architectures
from tests.test_yaml_format import MALFORMED, expected_message

REPO = Path(__file__).resolve().parents[1]


def test_sample_validate_draw_info(tmp_path, capsys):
    out = tmp_path / "cells.yaml"
    assert main(["space", "sample", "-n", "4", "--seed", "3", "--out", str(out)]) == 0
    records = load_architectures(out)
    assert len(records) == 4 and records[0].blueprint is not None
    assert main(["space", "validate", str(out)]) == 0
    assert "ok:" in capsys.readouterr().out
    png = tmp_path / "cell.png"
    assert main(["space", "draw", str(out), "--index", "1", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert main(["space", "info", "--samples", "2", "--blueprint", "mnist-search"]) == 0
    text = capsys.readouterr().out
    # the paper's space: inputs chosen independently, so C(3+j, 2) input pairs for node j
    assert "architectures (normal x reduce): 2.163e+30" in text and "MFLOPs/image" in text
    assert "5 nodes x 2 inputs (may repeat), output rule loose_ends" in text


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_validate_malformed_exit_1_with_one_line(path, capsys):
    assert main(["space", "validate", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected_message(path) in err and "Traceback" not in err


def test_errors_in_a_real_process_have_no_traceback(tmp_path):
    good = tmp_path / "good.yaml"
    assert main(["space", "sample", "-n", "1", "--out", str(good)]) == 0
    res = subprocess.run(
        [sys.executable, "-m", "gtn_search", "space", "validate", str(good), *map(str, MALFORMED)],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == len(MALFORMED)
    assert res.stdout.count("ok:") == 1
    res = subprocess.run([sys.executable, "-m", "gtn_search", "space", "draw", str(MALFORMED[0]), "--out", "x.png"],
                         capture_output=True, text=True, cwd=REPO, check=False)
    assert res.returncode == 1 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr


def test_bad_arguments(tmp_path, capsys):
    assert main(["space", "sample", "-n", "0", "--out", str(tmp_path / "x.yaml")]) == 1
    assert "--num must be >= 1" in capsys.readouterr().err
    assert main(["space", "info", "--space", "gtn-nsa"]) == 1
    assert "did you mean 'gtn-nas'" in capsys.readouterr().err
    assert main(["space", "info", "--blueprint", "cifar-huge"]) == 1
    assert "unknown blueprint preset" in capsys.readouterr().err


def test_plugins_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    for name in ("sep_conv_3x3", "max_pool_2x2", "gtn-nas", "darts"):
        assert name in text


def test_zoo_lists_writes_and_draws_published_cells(tmp_path, capsys):
    from search_spaces.zoo import load_zoo_cell, zoo_names

    assert main(["space", "zoo"]) == 0
    listing = capsys.readouterr().out
    for name in zoo_names():
        assert name in listing and load_zoo_cell(name).metadata["source"] in listing
    assert "ops: avg_pool_3x3, conv_1x7_7x1, identity" in listing  # AmoebaNet-A
    out = tmp_path / "baselines" / "nasnet-a.yaml"
    assert main(["space", "zoo", "nasnet-a", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert load_architectures(out)[0] == load_zoo_cell("nasnet-a")
    assert main(["space", "validate", str(out)]) == 0
    png = tmp_path / "nasnet.png"  # NASNet-A takes in0 twice: parallel edges are drawn apart
    assert main(["space", "draw", str(out), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["space", "zoo", "darts-v2"]) == 0  # no --out: the YAML on stdout
    assert "format: gtn-search/architecture" in capsys.readouterr().out


def test_zoo_errors_are_one_line(capsys):
    assert main(["space", "zoo", "dartsv2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown zoo cell 'dartsv2' (did you mean 'darts-v2'?)" in err
    assert main(["space", "zoo", "--out", "x.yaml"]) == 1
    assert "--out needs a zoo cell name" in capsys.readouterr().err
