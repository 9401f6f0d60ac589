"""GTN: meta-gradients, learning, exact resume, NaN handling, curricula, teaching sets, bad files."""

from __future__ import annotations

import warnings

from pathlib import Path

import pytest
import torch

from gtn_search.data import DatasetTensors, load_dataset
from gtn_search.errors import CheckpointError, ConfigError, TrainingError
from gtn_search.gtn.config import GTNConfig, load_config, preset_names
from gtn_search.gtn.curriculum import CURRICULA, Curriculum
from gtn_search.gtn.meta_train import MetaTrainer, read_checkpoint
from gtn_search.gtn.teaching_set import TeachingSet
from gtn_search.gtn.unroll import evaluate, unroll


TINY = {
    "generator": {"noise_dim": 8, "hidden": 32, "channels": 8},
    "inner_steps": 4,
    "inner_batch": 20,
    "learner": {"kind": "conv", "channels": [4, 8], "hidden": 16},
    "meta_iterations": 6,
    "meta_batch": 32,
    "lr": 0.01,
    "intermediate_every": 2,
    "monitor_every": 3,
    "monitor_size": 200,
    "checkpoint_every": 2,
}


def tiny_config(**overrides) -> GTNConfig:
    return load_config(None, {**TINY, **overrides})


def random_data(shape=(1, 12, 12), n=400, classes=10, name="mnist") -> DatasetTensors:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    # class-dependent means make the task learnable
    x = torch.randn(n, *shape, generator=g) * 0.5 + (y.float() / classes).view(-1, 1, 1, 1) * 2
    return DatasetTensors(name, x, y, x[:100], y[:100], x[:100], y[:100], (0.0,) * shape[0], (1.0,) * shape[0],
                          classes, tuple(str(i) for i in range(classes)))


@pytest.fixture(scope="module")
def mnist_small(mnist_root) -> DatasetTensors:
    return load_dataset("mnist", mnist_root, limit=2000)


def test_meta_gradients_reach_generator_curriculum_and_schedule():
    trainer = MetaTrainer(tiny_config(soft_labels=True), random_data())
    cfg = trainer.config
    from gtn_search.gtn.learners import make_learner
    from gtn_search.gtn.unroll import logits_of

    learner, _ = make_learner(cfg.learner, trainer.data.shape, 10, seed=1)
    images, targets = trainer.gtn.teaching_batches(torch.Generator().manual_seed(0))
    lr, momentum = trainer.gtn.schedule()
    result = unroll(learner, images, targets, lr, momentum, create_graph=True)
    loss = torch.nn.functional.cross_entropy(logits_of(learner, result.params, trainer.data.train_x[:32]),
                                             trainer.data.train_y[:32])
    loss.backward()
    groups = {
        "generator": list(trainer.gtn.generator.parameters()),
        "noise": [trainer.gtn.curriculum.noise],
        "soft labels": [trainer.gtn.curriculum.label_logits],
        "lr": [trainer.gtn.optimizer.log_lr],
        "momentum": [trainer.gtn.optimizer.logit_momentum],
    }
    for name, params in groups.items():
        grads = [p.grad for p in params]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert sum(float(g.abs().sum()) for g in grads) > 0, name
    # every step's lr gets its own gradient (except possibly the last momentum, which only scales v)
    assert (trainer.gtn.optimizer.log_lr.grad != 0).all()


def test_gradient_checkpointing_gives_the_same_meta_gradient():
    grads = []
    for ckpt in (False, True):
        trainer = MetaTrainer(tiny_config(gradient_checkpointing=ckpt, meta_iterations=1), random_data())
        trainer.step()
        grads.append(torch.cat([p.detach().flatten() for p in trainer.gtn.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_meta_training_reduces_meta_loss_and_teaches_fresh_learners(mnist_small):
    cfg = tiny_config(meta_iterations=30, monitor_every=0, intermediate_every=0, lr=0.02, seed=3, inner_lr=0.1,
                      generator={"noise_dim": 16, "hidden": 64, "channels": 16},
                      learner={"kind": "conv", "channels": [8, 16], "hidden": 32})
    trainer = MetaTrainer(cfg, mnist_small)
    before = _fresh_learner_accuracy(trainer)
    trainer.run(progress=False)
    losses = trainer.history["meta_loss"]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    after = _fresh_learner_accuracy(trainer)
    assert before < 0.2 and after > before + 0.2, (before, after)


def _fresh_learner_accuracy(trainer: MetaTrainer, learners: int = 5) -> float:
    """Mean validation accuracy of fresh learners (seeds never used in meta-training) on the teaching set."""
    from gtn_search.gtn.learners import make_learner

    teaching, accs = trainer.teaching_set(), []
    for seed in range(100, 100 + learners):
        learner, _ = make_learner(trainer.config.learner, trainer.data.shape, 10, seed=seed)
        accs.append(evaluate(learner, teaching.train(learner), trainer.data.val_x, trainer.data.val_y)[0])
    return sum(accs) / learners


def test_resume_is_bit_for_bit(tmp_path):
    data = random_data()
    full = MetaTrainer(tiny_config(), data)
    full.run(progress=False)
    ckpt = tmp_path / "ckpt.pt"
    first = MetaTrainer(tiny_config(), data)
    first.run(checkpoint_path=ckpt, progress=False, stop_after=3)
    assert read_checkpoint(ckpt)["iteration"] == 3
    resumed = MetaTrainer.from_checkpoint(ckpt, data=data)
    resumed.run(progress=False)
    for (name, a), (_, b) in zip(full.gtn.state_dict().items(), resumed.gtn.state_dict().items()):
        assert torch.equal(a, b), name
    assert full.history["meta_loss"] == resumed.history["meta_loss"]
    assert full.history["monitor_accuracy"] == resumed.history["monitor_accuracy"]


def test_nonfinite_meta_gradients_are_skipped_then_stop_with_a_clear_error():
    trainer = MetaTrainer(tiny_config(inner_lr=10.0, max_nonfinite=3, meta_iterations=20, monitor_every=0),
                          random_data())
    # poison the curriculum so every inner loss is NaN
    with torch.no_grad():
        trainer.gtn.curriculum.noise.fill_(float("nan"))
    before = [p.detach().clone() for p in trainer.gtn.generator.parameters()]
    with pytest.raises(TrainingError, match="3 iterations in a row"):
        trainer.run(progress=False)
    assert trainer.history["skipped"] == [0, 1, 2]
    after = list(trainer.gtn.generator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # skipped updates changed nothing


@pytest.mark.parametrize("kind", CURRICULA)
def test_curricula_shapes_order_and_balanced_labels(kind):
    cur = Curriculum(kind, steps=5, batch=10, noise_dim=3, num_classes=10)
    n1, l1, t1 = cur.sample(torch.Generator().manual_seed(0))
    n2, l2, _ = cur.sample(torch.Generator().manual_seed(1))
    assert n1.shape == (5, 10, 3) and l1.shape == (5, 10) and torch.equal(l1, t1)
    assert torch.equal(torch.bincount(l1.flatten(), minlength=10), torch.full((10,), 5))
    if kind == "full":
        assert torch.equal(n1, n2) and torch.equal(l1, l2)
    else:
        assert not torch.equal(n1, n2)
    if kind in ("shuffled_batch", "all_shuffled"):  # the same learned vectors, in another order
        assert torch.allclose(n1.flatten().sort().values, n2.flatten().sort().values)
    assert (cur.noise is None) == (kind == "none")


def test_teaching_set_round_trip_replays_the_inner_loop(tmp_path):
    trainer = MetaTrainer(tiny_config(), random_data())
    trainer.run(progress=False)
    ts = trainer.teaching_set()
    path = ts.save(tmp_path / "ts.pt")
    loaded = TeachingSet.load(path, dataset="mnist")
    assert loaded.steps == 4 and loaded.batch == 20 and loaded.image_shape == (1, 12, 12)
    assert torch.allclose(loaded.images, ts.images, atol=2e-3)  # stored as float16
    assert torch.equal(loaded.lr, ts.lr) and torch.equal(loaded.momentum, ts.momentum)
    from gtn_search.gtn.learners import make_learner

    learner, _ = make_learner(trainer.config.learner, (1, 12, 12), 10, seed=5)
    a = evaluate(learner, ts.train(learner), trainer.data.val_x, trainer.data.val_y)[0]
    b = evaluate(learner, loaded.train(learner), trainer.data.val_x, trainer.data.val_y)[0]
    assert abs(a - b) <= 0.02
    assert loaded.info["config"]["inner_steps"] == 4
    with pytest.raises(CheckpointError, match="made for dataset 'mnist', not 'cifar10'"):
        TeachingSet.load(path, dataset="cifar10")
    with pytest.raises(CheckpointError, match="cannot train for 9"):
        loaded.train(learner, steps=9)


def test_nas_learners_and_rgb_shapes():
    cfg = tiny_config(learner={"kind": "nas", "space": "gtn-nas",
                               "blueprint": {"channels": 4, "stages": 2, "cells_per_stage": 1}},
                      meta_iterations=2, monitor_every=1, inner_steps=2)
    trainer = MetaTrainer(cfg, random_data(shape=(3, 16, 16), name="cifar10"))
    trainer.run(progress=False)
    assert all(d.startswith("nas:") for d in trainer.history["learner"])
    assert len(set(trainer.history["learner"])) == 2  # a new architecture every meta-iteration
    assert trainer.teaching_set().images.shape == (2, 20, 3, 16, 16)


def _write_bad(path: Path, kind: str, good: Path) -> Path:
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "garbage":
        path.write_bytes(b"\x00not a torch file" * 100)
    elif kind == "malicious":
        class Evil:
            def __reduce__(self):
                return (Path.touch, (path.with_suffix(".pwned"),))

        torch.save({"format": "gtn-search/teaching-set", "version": 1, "x": Evil()}, path)
    elif kind == "newer":
        data = torch.load(good, weights_only=True)
        data["version"] = 99
        torch.save(data, path)
    elif kind == "wrong_format":
        torch.save({"format": "something-else", "version": 1}, path)
    elif kind == "bad_shape":
        data = torch.load(good, weights_only=True)
        data["lr"] = torch.ones(3)
        torch.save(data, path)
    elif kind == "nan":
        data = torch.load(good, weights_only=True)
        data["images"][0, 0, 0, 0, 0] = float("nan")
        torch.save(data, path)
    return path


@pytest.mark.parametrize("kind, message", [
    ("truncated", "corrupt or truncated"), ("garbage", "corrupt or truncated"), ("malicious", "refused to load"),
    ("newer", "newer gtn-search"), ("wrong_format", "not a gtn-search teaching set"),
    ("bad_shape", "lr and momentum must have shape"), ("nan", "NaN"),
])
def test_bad_teaching_set_files_are_rejected(tmp_path, kind, message):
    trainer = MetaTrainer(tiny_config(meta_iterations=1), random_data())
    good = trainer.teaching_set().save(tmp_path / "good.pt")
    bad = _write_bad(tmp_path / f"{kind}.pt", kind, good)
    with pytest.raises(CheckpointError, match=message):
        TeachingSet.load(bad)
    assert not bad.with_suffix(".pwned").exists()  # nothing was executed


def test_bad_and_mismatched_checkpoints(tmp_path):
    data = random_data()
    trainer = MetaTrainer(tiny_config(), data)
    ckpt = trainer.save_checkpoint(tmp_path / "c.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        MetaTrainer.from_checkpoint(bad, data=data)
    with pytest.raises(CheckpointError, match="for dataset 'mnist', not 'cifar10'"):
        MetaTrainer.from_checkpoint(ckpt, data=random_data(name="cifar10"))
    with pytest.raises(CheckpointError, match="made for images"):
        MetaTrainer.from_checkpoint(ckpt, data=random_data(shape=(1, 16, 16)))
    state = torch.load(ckpt, weights_only=True)
    del state["optimizer"]
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="missing field"):
        MetaTrainer.from_checkpoint(bad, data=data)
    with pytest.raises(CheckpointError, match="no such GTN checkpoint"):
        MetaTrainer.from_checkpoint(tmp_path / "nope.pt", data=data)


def test_presets_load_and_config_errors():
    assert {"mnist-cpu", "mnist-paper", "cifar10-paper"} <= set(preset_names())
    paper = load_config("mnist-paper")
    assert (paper.inner_steps, paper.inner_batch, paper.generator.noise_dim, paper.meta_iterations) == (32, 128, 128, 2000)
    assert load_config("cifar10-paper").betas == (0.9, 0.9)
    with pytest.raises(ConfigError, match="did you mean 'mnist-cpu'"):
        load_config("mnist-cpuu")
    with pytest.raises(ConfigError, match="field 'inner_steps'"):
        load_config(None, {"inner_steps": 0})
    with pytest.raises(ConfigError, match="unknown field 'inner_step'"):
        load_config(None, {"inner_step": 3})
    with pytest.raises(ConfigError, match="learner"):
        load_config(None, {"learner": {"kind": "mlp"}})


def test_fashion_nas_preset_is_what_trained_its_committed_teaching_set():
    """`gtn train --preset fashion-nas` reproduces the teaching set the README's figures come from
    (issue 15's variant (d), chosen by the rule fixed in advance)."""
    trained = Path(__file__).resolve().parents[1] / "benchmarks/results/fashion_nas_gtn_t128"
    assert load_config("fashion-nas") == load_config(trained / "config.yaml")
    teaching = TeachingSet.load(trained / "teaching_set.pt")
    assert (teaching.steps, teaching.dataset) == (128, "fashion_mnist")


def test_paper_preset_builds_at_full_size():
    """The authors' settings build (their meta-iterations are timed by benchmarks/gtn_paper_preset.py)."""
    cfg = load_config("mnist-paper")
    trainer = MetaTrainer(cfg, random_data(shape=(1, 28, 28)))
    assert trainer.gtn.curriculum.noise.shape == (32, 128, 128)
    assert trainer.gtn.optimizer.log_lr.shape == (32,)
    from gtn_search.gtn.learners import make_learner

    _learner, desc = make_learner(cfg.learner, (1, 28, 28), 10, seed=0)
    assert desc == "conv64-128-fc256"
    images, _ = trainer.gtn.teaching_batches(torch.Generator().manual_seed(0))
    assert images.shape == (32, 128, 1, 28, 28) and float(images.detach().abs().max()) <= 2.0


def test_cli_train_resume_sample_eval(tmp_path, mnist_root, capsys):
    from gtn_search.cli import main

    out = tmp_path / "run"
    args = ["gtn", "train", "--out", str(out), "--data-root", str(mnist_root), "--no-progress", "--threads", "1"]
    sets = [f"--set={k}={v}" for k, v in {**TINY, "inner_steps": 3, "meta_iterations": 4}.items()
            if not isinstance(v, dict)]
    sets += ["--set=generator={noise_dim: 8, hidden: 32, channels: 8}",
             "--set=learner={kind: conv, channels: [4, 8], hidden: 16}"]
    assert main(args + sets) == 0
    for name in ("checkpoint.pt", "teaching_set.pt", "history.json", "meta_training.png", "schedule.png",
                 "curriculum.png", "config.yaml"):
        assert (out / name).stat().st_size > 0, name
    assert main(args + sets) == 1
    assert "pass --resume" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 0
    assert main(["gtn", "sample", str(out / "checkpoint.pt"), "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["gtn", "eval", str(out / "teaching_set.pt"), "--learners", "2", "--data-root", str(mnist_root)]) == 0
    assert "+-" in capsys.readouterr().out
    assert main(["gtn", "eval", str(tmp_path / "g.png")]) == 1
    assert "corrupt or truncated" in capsys.readouterr().err


def test_sample_from_a_checkpoint_needs_no_dataset(tmp_path, mnist_root, capsys, monkeypatch):
    """``gtn sample`` draws a checkpoint's curriculum from the checkpoint alone (issue 12, part 1)."""
    import gtn_search.data
    from gtn_search.cli import main
    from gtn_search.gtn.meta_train import teaching_set_from_checkpoint

    out = tmp_path / "run"
    sets = [f"--set={k}={v}" for k, v in {**TINY, "inner_steps": 3, "meta_iterations": 2}.items()
            if not isinstance(v, dict)]
    sets += ["--set=generator={noise_dim: 8, hidden: 32, channels: 8}",
             "--set=learner={kind: conv, channels: [4, 8], hidden: 16}"]
    assert main(["gtn", "train", "--out", str(out), "--data-root", str(mnist_root), "--no-progress",
                 "--threads", "1", *sets]) == 0
    saved = TeachingSet.load(out / "teaching_set.pt")

    def no_data(*args, **kwargs):
        raise AssertionError("gtn sample must not load a dataset")

    monkeypatch.setattr(gtn_search.data, "load_dataset", no_data)
    rebuilt = teaching_set_from_checkpoint(out / "checkpoint.pt")
    assert torch.equal(rebuilt.images.half().float(), saved.images)
    assert (rebuilt.mean, rebuilt.std, rebuilt.dataset) == (saved.mean, saved.std, "mnist")
    assert main(["gtn", "sample", str(out / "checkpoint.pt"), "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    # a checkpoint written before mean/std were stored still samples (display scaled per image)
    from gtn_search.tensorfile import save_tensor_file

    old = {k: v for k, v in read_checkpoint(out / "checkpoint.pt").items() if k not in ("mean", "std")}
    save_tensor_file(tmp_path / "old.pt", old)
    assert teaching_set_from_checkpoint(tmp_path / "old.pt").mean == ()
    assert main(["gtn", "sample", str(tmp_path / "old.pt"), "--out", str(tmp_path / "old.png")]) == 0


def _tiny_gtn_config(**overrides):
    from gtn_search.gtn.config import load_config

    return load_config(None, {
        "generator": {"noise_dim": 8, "hidden": 32, "channels": 8}, "inner_steps": 3, "inner_batch": 16,
        "learner": {"kind": "nas", "blueprint": {"channels": 2, "stages": 1, "cells_per_stage": 1,
                                                  "stem_multiplier": 2}},
        "meta_iterations": 3, "meta_batch": 16, "inner_lr": 0.1, "monitor_every": 0, "intermediate_every": 0,
        "device": "cpu", **overrides})


def test_one_learner_per_iteration_is_meta_training_as_it_was_bit_for_bit(mnist_root, monkeypatch):
    """Values written by the code before learners_per_iteration existed (same config, one thread;
    bit for bit on the CPU kind they were recorded on, see tests/recorded_numbers.py). Gradients
    converted to channels-last (``search_spaces.layout.channels_last_grad``) and few-channel norms
    computed in NCHW (``search_spaces.layout.BatchNorm2d``), both later, change float rounding, so
    they are off here; tests/test_layout_conv.py and tests/test_layout_norm.py bound what they change."""
    import torch

    import search_spaces.layout as layout
    from tests.recorded_numbers import assert_recorded

    monkeypatch.setattr(layout, "convert_grads", False)
    monkeypatch.setattr(layout, "nchw_norm_max_channels", 0)

    from gtn_search.data import load_dataset
    from gtn_search.gtn.meta_train import MetaTrainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = MetaTrainer(_tiny_gtn_config(), load_dataset("mnist", mnist_root))
        for _ in range(3):
            trainer.step()
        total = float(sum(p.detach().double().abs().sum() for p in trainer.gtn.parameters()))
    finally:
        torch.set_num_threads(threads)
    assert_recorded(list(trainer.history["meta_loss"]) + [total], [
        "0x1.021aee0000000p+2", "0x1.6ed22e0000000p+1", "0x1.1eccbc0000000p+1", "0x1.16f6a140d96c0p+11"])
    assert "learners_per_iteration" not in trainer.config.to_mapping()  # earlier runs' configs unchanged


def test_k_learners_per_iteration_average_their_meta_gradients(mnist_root):
    import torch

    from gtn_search.data import load_dataset
    from gtn_search.gtn.meta_train import MetaTrainer

    data = load_dataset("mnist", mnist_root)
    trainer = MetaTrainer(_tiny_gtn_config(learners_per_iteration=3), data)
    captured = {}
    step = trainer.meta_opt.step

    def capture(*args, **kwargs):
        captured.update({n: p.grad.detach().clone() for n, p in trainer.gtn.named_parameters() if p.grad is not None})
        return step(*args, **kwargs)

    trainer.meta_opt.step = capture
    with warnings.catch_warnings():  # the scheduler notices the wrapped step; harmless here
        warnings.filterwarnings("ignore", message="Seems like `optimizer.step\\(\\)` has been overridden")
        record = trainer.step()
    assert len(record["learner"].split(" | ")) == 3 and len(set(record["learner"].split(" | "))) == 3
    assert trainer.config.to_mapping()["learners_per_iteration"] == 3
    # independently: each learner's meta-gradient on its own, then their mean
    grads = []
    for k in range(3):
        alone = MetaTrainer(_tiny_gtn_config(learners_per_iteration=3), data)
        alone.gtn.train()
        loss, _, _ = alone._learner_meta_loss(k)
        g = torch.autograd.grad(loss, [p for _, p in alone.gtn.named_parameters()], allow_unused=True)
        grads.append({n: gi for (n, _), gi in zip(alone.gtn.named_parameters(), g) if gi is not None})
    assert captured and set(captured) == set(grads[0])
    for name, got in captured.items():
        want = sum(g[name] for g in grads) / 3
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-5)
    assert record["meta_loss"] > 0
