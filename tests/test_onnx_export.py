"""ONNX export (``gtn_search.onnx_export``, ``export --onnx``, ``train --onnx``): round trips and errors.

Each export takes a few seconds (torch.export traces the network), so the cases are chosen to cover
the most with few exports: a random cell in the GTN learner style with an auxiliary head (weight
norm folded, head dropped, batch statistics), a zoo cell (DARTS-V2: separable and dilated
convolutions), the quickstart's best cell (a node reading one input twice, and a reduction cell
input no node reads) through ``export --onnx``, a study's trial, and a tiny ``train --onnx`` on
generated data. ``benchmarks/onnx_roundtrip.py`` checks 34 networks the same way.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

import gtn_search.data
import gtn_search.onnx_export as ox
from gtn_search.cli import main
from gtn_search.data import DatasetTensors
from gtn_search.errors import MissingPackageError
from gtn_search.onnx_export import (
    TOLERANCE,
    OnnxCheckError,
    OnnxExportError,
    check_onnx,
    export_onnx,
    prepare_for_export,
    require_export_packages,
)
from search_spaces.blueprint import blueprint_preset
from search_spaces.layout import Conv2d as LayoutConv2d
from search_spaces.network import build
from search_spaces.presets import get_space
from search_spaces.zoo import load_zoo_cell


QUICKSTART_BEST = Path(__file__).resolve().parents[1] / "benchmarks" / "configs" / "quickstart_best_c6bf81c5ab81.yaml"
TINY = blueprint_preset("mnist-tiny")
LEARNER_AUX = TINY.for_learner().model_copy(update={"auxiliary_weight": 0.4, "drop_path": 0.2})
SUMMARY = re.compile(r"^wrote (\S+\.onnx) \(onnxruntime check: max \|diff\| (\S+) <= 1e-4 on a batch of 8\)$")


@pytest.fixture(scope="module")
def export_packages() -> None:
    for name in ox.EXPORT_PACKAGES:
        pytest.importorskip(name)


def random_arch(seed: int = 3):
    return get_space("gtn-nas").sample(np.random.default_rng(seed))


def generated_mnist(n: int = 120) -> DatasetTensors:
    """MNIST-shaped random images whose labels are learnable, as ``tests/test_device.py`` makes them."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 10
    x = torch.randn(n, 1, 28, 28, generator=g) * 0.5 + (y.float() / 10).view(-1, 1, 1, 1) * 2
    return DatasetTensors("mnist", x, y, x[:40], y[:40], x[:40], y[:40], (0.1307,), (0.3081,), 10,
                          tuple(str(i) for i in range(10)))


# -- preparing a network ---------------------------------------------------------------------------
def test_weight_norm_is_folded_on_a_copy_with_identical_outputs_and_the_aux_head_dropped():
    net = build(random_arch(), LEARNER_AUX, seed=0)
    x = torch.randn(4, 1, 28, 28)
    model = prepare_for_export(net)
    assert not any(parametrize.is_parametrized(m) for m in model.modules())
    assert model.aux_head is None and not model.training
    # plain convolution classes again (search_spaces.layout.Conv2d is nn.Conv2d with a channels-last
    # detour for strided 1x1 kernels; traced for export it is nn.Conv2d's own forward)
    assert all(type(m) in (torch.nn.Conv2d, LayoutConv2d) for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    # the original is untouched: still weight-normed, in training mode, with its head
    assert net.training and net.aux_head is not None
    assert any(parametrize.is_parametrized(m) for m in net.modules())
    assert isinstance(net(x), tuple)  # (logits, aux) in training mode, so the original still runs
    net.eval()
    with torch.no_grad():
        assert torch.equal(model(x), net(x))  # folded weights compute bit for bit the same logits


# -- round trips -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["random-learner-aux", "zoo-darts-v2"])
def test_round_trip_within_tolerance(case, tmp_path, export_packages):
    import onnx

    arch, bp = (random_arch(), LEARNER_AUX) if case == "random-learner-aux" else \
        (load_zoo_cell("darts-v2").architecture, TINY)
    net = build(arch, bp, seed=1)
    path = tmp_path / f"{case}.onnx"
    done = export_onnx(net, path, bp.input_shape, metadata={"architecture_hash": arch.hash})
    assert done.check is not None and done.check.passed and done.check.max_abs_diff <= TOLERANCE
    assert done.check.batch == 8 and done.size_bytes == path.stat().st_size > 0
    assert SUMMARY.match(done.summary())
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # one self-contained file, no temporaries
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["logits"]  # the auxiliary head is gone
    assert not any("aux" in init.name for init in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a symbolic batch axis
    assert {p.key: p.value for p in model.metadata_props}["gtn_search.architecture_hash"] == arch.hash
    assert check_onnx(path, net, batch=3, seed=5).passed  # another batch size runs too
    with pytest.raises(OnnxCheckError, match=r"max \|diff\| \S+ > 1e-4 on a batch of 8; the ONNX model"):
        check_onnx(path, build(arch, bp, seed=2))  # other weights: the check catches the mismatch


def test_a_failed_check_keeps_no_file_and_names_difference_and_tolerance(tmp_path, monkeypatch, export_packages):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(10))
    net(torch.zeros(1, 1, 8, 8))  # a small module exports in a second
    monkeypatch.setattr(ox, "_pytorch_logits", lambda module, x: torch.ones(len(x), 10) * 1e3)
    with pytest.raises(OnnxCheckError) as info:
        export_onnx(net, tmp_path / "m.onnx", (1, 8, 8))
    assert re.search(r"m\.onnx: onnxruntime check failed: max \|diff\| \S+ > 1e-4 on a batch of 8", str(info.value))
    assert info.value.check.max_abs_diff > 900 and not info.value.check.passed
    assert list(tmp_path.iterdir()) == []


def test_an_unexportable_module_is_one_clear_error(tmp_path, export_packages):
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)[:, :10] if x.sum() > 0 else -x.flatten(1)[:, :10]

    with pytest.raises(OnnxExportError, match="ONNX export failed: "):
        export_onnx(DataDependent(), tmp_path / "m.onnx", (1, 28, 28))
    assert list(tmp_path.iterdir()) == []


# -- the command line ------------------------------------------------------------------------------
def test_cli_export_from_the_quickstart_yaml_and_from_a_study(tmp_path, capsys, export_packages):
    out = tmp_path / "q.onnx"
    assert main(["export", str(QUICKSTART_BEST), "--onnx", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert SUMMARY.match(line) and out.exists(), line
    cfg = tmp_path / "s.yaml"
    cfg.write_text("study: s.db\nevaluator: synthetic\nblueprint: mnist-tiny\nbudget: {trials: 3}\n")
    assert main(["search", str(cfg), "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "nested" / "t1.onnx"
    assert main(["export", str(tmp_path / "s.db"), "--trial", "1", "--onnx", str(out)]) == 0
    assert SUMMARY.match(capsys.readouterr().out.strip()) and out.exists()
    import onnx

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["gtn_search.trial"] == "1" and json.loads(props["gtn_search.blueprint"])["channels"] == 4
    assert main(["export", str(tmp_path / "s.db"), "--trial", "99", "--onnx", str(out)]) == 1
    assert "has no trial 99" in capsys.readouterr().err


def test_cli_train_onnx_exports_the_trained_weights(tmp_path, capsys, monkeypatch, export_packages):
    import onnx

    data = generated_mnist()
    monkeypatch.setattr(gtn_search.data, "load_dataset", lambda *a, **k: data)
    arch_file = tmp_path / "arch.yaml"
    assert main(["space", "sample", "-n", "1", "--blueprint", "mnist-tiny", "--out", str(arch_file)]) == 0
    out = tmp_path / "model.onnx"
    assert main(["train", str(arch_file), "--epochs", "1", "--batch-size", "60", "--out", str(tmp_path / "run"),
                 "--no-progress", "--onnx", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "test accuracy" in lines[-2] and SUMMARY.match(lines[-1]), lines
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["gtn_search.weights"] == "trained" and json.loads(props["gtn_search.input_mean"]) == [0.1307]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert float(props["gtn_search.test_accuracy"]) == result["test_accuracy"]


# -- errors ----------------------------------------------------------------------------------------
def test_missing_export_packages_are_one_line_with_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # 'import onnxruntime' now raises ImportError
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(MissingPackageError, match=r"packages onnxruntime, onnxscript: pip install 'gtn-search\[export\]'"):
        require_export_packages()
    assert main(["export", str(QUICKSTART_BEST), "--onnx", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'gtn-search[export]'" in err
    assert main(["train", str(QUICKSTART_BEST), "--out", str(tmp_path / "run"), "--onnx", str(tmp_path / "m.onnx")]) == 1
    assert "pip install 'gtn-search[export]'" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_bad_paths_and_unreadable_yaml_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("format: [unclosed\n")
    cases = [
        (["export", str(QUICKSTART_BEST), "--onnx", str(tmp_path / "folder")], "is a folder, expected a file"),
        (["export", str(QUICKSTART_BEST), "--onnx", str(tmp_path / "m.txt")], "write a path ending in .onnx"),
        (["export", str(QUICKSTART_BEST), "--onnx", str(tmp_path / "file" / "m.onnx")], "is a file, not a folder"),
        (["export", str(bad_yaml), "--onnx", str(tmp_path / "m.onnx")], "bad.yaml"),
        (["export", str(tmp_path / "missing.yaml"), "--onnx", str(tmp_path / "m.onnx")], "missing.yaml"),
        (["export", str(QUICKSTART_BEST), "--onnx", str(tmp_path / "m.onnx"), "--index", "3"], "--index 3 out of range"),
        (["export", str(QUICKSTART_BEST), "--onnx", str(tmp_path / "m.onnx"), "--trial", "1"], "applies to a study"),
        (["export", str(QUICKSTART_BEST), "--onnx", str(tmp_path / "m.onnx"), "--out", str(tmp_path)], "give one"),
        (["export", str(tmp_path / "s.db")], "--out is required"),
        (["export", str(tmp_path / "s.db"), "--pareto", "--onnx", str(tmp_path / "m.onnx")], "pick a trial of the front"),
        (["train", str(QUICKSTART_BEST), "--out", str(tmp_path / "run"), "--onnx", str(tmp_path / "m.txt")],
         "write a path ending in .onnx"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "file", "folder"]  # nothing written
