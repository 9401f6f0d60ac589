"""The moving average of the GTN (``ema_decay``): what it averages, that it leaves meta-training
alone, that it is what gets exported, and that it resumes exactly."""

from __future__ import annotations

import pytest
import torch

from gtn_search.errors import CheckpointError
from gtn_search.gtn.meta_train import MetaTrainer, read_checkpoint, teaching_set_from_checkpoint
from tests.test_gtn import random_data, tiny_config

DECAY = 0.8


def test_the_average_is_the_exponential_moving_average_of_the_meta_updates_and_changes_nothing_else():
    data = random_data()
    plain = MetaTrainer(tiny_config(monitor_every=0), data)
    averaged = MetaTrainer(tiny_config(monitor_every=0, ema_decay=DECAY), data)
    expected: dict[str, torch.Tensor] | None = None
    for _ in range(5):
        plain.step()
        averaged.step()
        raw = {n: p.detach().clone() for n, p in averaged.gtn.named_parameters()}
        # an independent computation: the first update is copied, then e = d * e + (1 - d) * p
        expected = raw if expected is None else {n: DECAY * expected[n] + (1 - DECAY) * raw[n] for n in raw}
    assert plain.history["meta_loss"] == averaged.history["meta_loss"]  # meta-training is untouched
    for (name, a), (_, b) in zip(plain.gtn.state_dict().items(), averaged.gtn.state_dict().items()):
        assert torch.equal(a, b), name
    assert expected is not None
    got = dict(averaged.exported_gtn().named_parameters())
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-6, atol=1e-7, msg=name)
        assert not torch.equal(got[name], dict(averaged.gtn.named_parameters())[name]) or name.endswith("labels")
    # the exported teaching set comes from the average; the raw one is still available
    ema_set, raw_set = averaged.teaching_set(), averaged.teaching_set(averaged=False)
    assert torch.equal(raw_set.images, plain.teaching_set().images)
    assert not torch.allclose(ema_set.images, raw_set.images)
    torch.testing.assert_close(ema_set.lr, torch.exp(expected["optimizer.log_lr"]))


def test_before_any_update_the_exported_gtn_is_the_one_being_trained():
    trainer = MetaTrainer(tiny_config(ema_decay=DECAY), random_data())
    assert trainer.exported_gtn() is trainer.gtn


def test_the_average_resumes_bit_for_bit_and_is_what_a_checkpoint_exports(tmp_path):
    data = random_data()
    config = tiny_config(ema_decay=DECAY)
    full = MetaTrainer(config, data)
    full.run(progress=False)
    ckpt = tmp_path / "ckpt.pt"
    first = MetaTrainer(config, data)
    first.run(checkpoint_path=ckpt, progress=False, stop_after=3)
    resumed = MetaTrainer.from_checkpoint(ckpt, data=data)
    resumed.run(checkpoint_path=ckpt, progress=False)
    for (name, a), (_, b) in zip(full.ema.state_dict().items(), resumed.ema.state_dict().items()):
        assert torch.equal(a, b), name
    assert full.history["monitor_accuracy"] == resumed.history["monitor_accuracy"]
    assert read_checkpoint(ckpt)["config"]["ema_decay"] == DECAY
    from_file, in_memory = teaching_set_from_checkpoint(ckpt), full.teaching_set()
    assert torch.equal(from_file.images, in_memory.images)
    assert torch.equal(from_file.lr, in_memory.lr)
    assert not torch.equal(from_file.images, full.teaching_set(averaged=False).images)


def test_a_checkpoint_without_the_average_is_refused_with_the_fix(tmp_path):
    data = random_data()
    ckpt = MetaTrainer(tiny_config(), data).save_checkpoint(tmp_path / "plain.pt")
    state = read_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="no moving average of the GTN.*resume without ema_decay"):
        MetaTrainer(tiny_config(ema_decay=DECAY), data).load_state_dict(state, str(ckpt))


def test_runs_without_the_average_store_the_same_config_as_before():
    assert "ema_decay" not in tiny_config().to_mapping()
    assert tiny_config(ema_decay=0.99).to_mapping()["ema_decay"] == 0.99


def test_gtn_train_exports_the_average_and_says_so(tmp_path, mnist_root, capsys):
    from gtn_search.cli import main
    from gtn_search.gtn.teaching_set import TeachingSet
    from tests.test_gtn import TINY

    out = tmp_path / "run"
    sets = [f"--set={k}={v}" for k, v in {**TINY, "inner_steps": 3, "meta_iterations": 3, "monitor_every": 0}.items()
            if not isinstance(v, dict)]
    sets += ["--set=generator={noise_dim: 8, hidden: 32, channels: 8}",
             "--set=learner={kind: conv, channels: [4, 8], hidden: 16}", "--set=ema_decay=0.5"]
    assert main(["gtn", "train", "--out", str(out), "--data-root", str(mnist_root), "--no-progress",
                 "--threads", "1", *sets]) == 0
    assert "from the moving average of the GTN, decay 0.5" in capsys.readouterr().out
    written = TeachingSet.load(out / "teaching_set.pt")
    assert torch.equal(written.lr, teaching_set_from_checkpoint(out / "checkpoint.pt").lr)
