"""Final training (``gtn-search train``): recipe, test accuracy, exact resume, NaN and bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import gtn_search.final_train as ft
from gtn_search.augment import cutout
from gtn_search.cli import main
from gtn_search.data import load_dataset
from gtn_search.errors import ConfigError, TrainingError
from gtn_search.final_train import TrainConfig, train_final
from search_spaces.blueprint import Blueprint
from search_spaces.presets import get_space

TINY_BP = Blueprint.from_mapping({"channels": 4, "stages": 2, "cells_per_stage": 1, "stem_multiplier": 2,
                                  "drop_path": 0.1, "auxiliary_weight": 0.4})


@pytest.fixture(scope="module")
def small_mnist(mnist_root):
    """MNIST cut to 640 training, 200 validation and 500 test images (about 2 s per epoch)."""
    d = load_dataset("mnist", mnist_root)
    return dataclasses.replace(d, train_x=d.train_x[:640], train_y=d.train_y[:640], val_x=d.val_x[:200],
                               val_y=d.val_y[:200], test_x=d.test_x[:500], test_y=d.test_y[:500])


def subset(data, n):
    return dataclasses.replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n])


def arch():
    return get_space("gtn-nas").sample(np.random.default_rng(3))


def test_trains_and_reports_test_accuracy(small_mnist, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.1, cutout=8)
    result = train_final(arch(), TINY_BP, small_mnist, cfg, tmp_path, seed=1)
    assert result.steps == 30 and len(result.history) == 3
    vals = [h["val_accuracy"] for h in result.history]
    assert vals[-1] > vals[0] + 0.1  # it learns (measured 0.105 -> 0.265 for this 4-channel cell)
    assert result.test_accuracy > 0.2  # 2x chance after 30 steps (measured 0.30)
    assert result.params > 0 and result.forward_flops > 0
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["test_accuracy"] == result.test_accuracy and saved["blueprint"]["auxiliary_weight"] == 0.4


def test_resume_after_a_crash_trains_exactly_like_an_uninterrupted_run(small_mnist, tmp_path, monkeypatch):
    cfg = TrainConfig(epochs=2, batch_size=32, cutout=6)
    small_mnist = subset(small_mnist, 192)  # 6 steps per epoch; drop path and cutout on
    before = torch.random.get_rng_state()
    full = train_final(arch(), TINY_BP, small_mnist, cfg, tmp_path / "full", seed=2)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    real_save = ft.save_tensor_file

    def crash_after_first_epoch(path, payload):
        real_save(path, payload)
        raise KeyboardInterrupt  # killed right after the epoch-1 checkpoint

    monkeypatch.setattr(ft, "save_tensor_file", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_final(arch(), TINY_BP, small_mnist, cfg, tmp_path / "cut", seed=2)
    monkeypatch.setattr(ft, "save_tensor_file", real_save)
    resumed = train_final(arch(), TINY_BP, small_mnist, cfg, tmp_path / "cut", seed=2)
    assert (resumed.test_accuracy, resumed.test_loss) == (full.test_accuracy, full.test_loss)
    with pytest.raises(ConfigError, match="another run .*seed"):
        train_final(arch(), TINY_BP, small_mnist, cfg, tmp_path / "cut", seed=3)


def test_a_finished_run_returns_its_saved_result_without_evaluating_again(small_mnist, tmp_path, monkeypatch):
    cfg = TrainConfig(epochs=1, batch_size=64)
    data = subset(small_mnist, 128)
    first = train_final(arch(), TINY_BP, data, cfg, tmp_path, seed=4)

    def no_evaluation(*args, **kwargs):
        raise AssertionError("a finished run evaluated again")

    monkeypatch.setattr(ft, "_evaluate", no_evaluation)
    again = train_final(arch(), TINY_BP, data, cfg, tmp_path, seed=4)
    assert again == first
    with pytest.raises(ConfigError, match="another run .*seed"):  # still checked against the checkpoint
        train_final(arch(), TINY_BP, data, cfg, tmp_path, seed=5)
    (tmp_path / "result.json").unlink()  # killed between the last checkpoint and result.json
    with pytest.raises(AssertionError, match="evaluated again"):
        train_final(arch(), TINY_BP, data, cfg, tmp_path, seed=4)


def test_a_saved_result_is_returned_even_when_its_checkpoint_is_gone(small_mnist, tmp_path, monkeypatch):
    """Result folders are committed without their (git-ignored) checkpoints: a fresh checkout must
    not train a finished run again, nor overwrite another run's recorded result."""
    cfg = TrainConfig(epochs=1, batch_size=64)
    data = subset(small_mnist, 128)
    first = train_final(arch(), TINY_BP, data, cfg, tmp_path, seed=4)
    (tmp_path / "checkpoint.pt").unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run trained again")

    monkeypatch.setattr(ft, "build", no_training)
    assert train_final(arch(), TINY_BP, data, cfg, tmp_path, seed=4) == first
    with pytest.raises(ConfigError, match=r"result.json: this result is for another run \(different seed\)"):
        train_final(arch(), TINY_BP, data, cfg, tmp_path, seed=5)
    assert json.loads((tmp_path / "result.json").read_text())["seed"] == 4  # kept


def test_nan_during_training_is_a_clear_error(small_mnist, tmp_path):
    bad = subset(small_mnist, 64)
    bad = dataclasses.replace(bad, train_x=torch.full_like(bad.train_x, float("nan")))
    with pytest.raises(TrainingError, match="loss became nan at epoch 1, step 1"):
        train_final(arch(), TINY_BP, bad, TrainConfig(epochs=1, batch_size=64), tmp_path, seed=0)


def test_cutout_zeroes_one_square_per_image():
    x = torch.ones(50, 1, 28, 28)
    out = cutout(x, torch.Generator().manual_seed(0), 8)
    zeros = (out == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 64 and zeros.min() >= 16  # a full 8x8 square, clipped at most to a quarter


def test_cli_train_and_its_errors(tmp_path, mnist_root, capsys):
    arch_file = tmp_path / "archs.yaml"
    assert main(["space", "sample", "-n", "2", "--blueprint", "mnist-tiny", "--out", str(arch_file)]) == 0
    out = tmp_path / "run"
    args = ["train", str(arch_file), "--index", "1", "--data-root", str(mnist_root), "--epochs", "0.5",
            "--limit", "500", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert json.loads((out / "result.json").read_text())["steps"] == 3  # ceil(0.5 * 500 / 96)
    assert main(args[:3] + ["7"] + args[4:]) == 1
    assert "--index 7 out of range" in capsys.readouterr().err
    (out / "checkpoint.pt").write_bytes(b"garbage")
    assert main(args) == 0  # finished: its result stands, the checkpoint is not read
    capsys.readouterr()
    (out / "result.json").unlink()  # unfinished: the run resumes from its checkpoint
    assert main(args) == 1
    assert "corrupt or truncated" in capsys.readouterr().err
    assert main(args[:-3] + ["--lr", "-1", "--out", str(tmp_path / "x"), "--no-progress"]) == 1
    assert "lr" in capsys.readouterr().err
