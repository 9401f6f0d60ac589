"""The device option: parsing and one-line errors, CPU results unchanged, device-independent files,
GPUs for workers, CUDA out-of-memory as a failed trial. Runs on CPU (and the meta device)."""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest
import torch

from gtn_search.cli import main
from gtn_search.configio import StrictModel, parse_model
from gtn_search.data import DatasetTensors
from gtn_search.device import gpu_for_worker, init_gpu_worker, resolve_device, visible_gpus
from gtn_search.errors import ConfigError, TrainingError
from gtn_search.evaluators import make_evaluator
from gtn_search.evaluators.base import Evaluator, Measurement
from gtn_search.final_train import TrainConfig, train_final
from gtn_search.gtn.config import GTNConfig, load_config
from gtn_search.gtn.meta_train import MetaTrainer
from gtn_search.registry import EVALUATORS
from gtn_search.runner import run_search
from gtn_search.search_config import SearchConfig
from gtn_search.tensorfile import load_tensor_file, save_tensor_file
from search_spaces.blueprint import blueprint_preset
from search_spaces.layout import use_channels_last
from search_spaces.presets import get_space
from tests.recorded_numbers import assert_recorded


TINY = {"generator": {"noise_dim": 8, "hidden": 32, "channels": 8}, "inner_steps": 4, "inner_batch": 20,
        "learner": {"kind": "conv", "channels": [4, 8], "hidden": 16}, "meta_iterations": 3, "meta_batch": 32,
        "lr": 0.01, "intermediate_every": 2, "monitor_every": 3, "monitor_size": 100, "checkpoint_every": 2}
# learners drawn as they were when the numbers in BEFORE were measured (before inputs could repeat)
NAS_LEARNER = {"kind": "nas", "space": {"name": "gtn-nas", "allow_repeated_inputs": False},
               "blueprint": {"channels": 2, "stages": 1, "cells_per_stage": 1, "stem_multiplier": 2}}


def random_data(shape=(1, 12, 12), n=400, classes=10) -> DatasetTensors:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes
    x = torch.randn(n, *shape, generator=g) * 0.5 + (y.float() / classes).view(-1, 1, 1, 1) * 2
    return DatasetTensors("mnist", x, y, x[:100], y[:100], x[:100], y[:100], (0.0,) * shape[0], (1.0,) * shape[0],
                          classes, tuple(str(i) for i in range(classes)))


def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


# -- choosing the device ------------------------------------------------------------------------------
def test_device_specs_resolve_and_unusable_ones_fail_with_one_line(monkeypatch):
    no_cuda(monkeypatch)
    assert resolve_device("cpu") == resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^device 'cuda': CUDA is not available on this machine \(torch .*\); "
                                          r"use device: cpu or auto$"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="expected auto, cpu, cuda, cuda:N or mps"):
        resolve_device("gpu")
    one_gpu(monkeypatch)
    assert resolve_device("auto") == resolve_device("cuda") == resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match=r"^device 'cuda:3': only 1 CUDA device\(s\) visible"):
        resolve_device("cuda:3")
    with pytest.raises(ConfigError, match="field 'device'"):
        parse_model(GTNConfig, {"device": "gpu"}, "gtn.yaml")


@pytest.mark.parametrize("argv", [
    ["gtn", "train", "--preset", "mnist-cpu", "--out", "{tmp}/g"],
    ["gtn", "eval", "{tmp}/teaching_set.pt"],
    ["search", "{tmp}/search.yaml"],
    ["compare", "{tmp}/compare.yaml"],
    ["train", "{tmp}/arch.yaml", "--out", "{tmp}/t"],
    ["quickstart", "--out", "{tmp}/q"],
])
def test_every_command_takes_device_and_cuda_without_cuda_is_one_line_exit_1(tmp_path, capsys, monkeypatch, argv):
    no_cuda(monkeypatch)
    assert main([a.format(tmp=tmp_path) for a in argv] + ["--device", "cuda"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --device: device 'cuda': CUDA is not available on this machine") and "\n" not in err


def test_a_search_config_asking_for_cuda_without_cuda_stops_with_one_line(tmp_path, capsys, monkeypatch):
    no_cuda(monkeypatch)
    (tmp_path / "s.yaml").write_text(f"study: {tmp_path / 's.db'}\nevaluator: synthetic\ndevice: cuda\n")
    assert main(["search", str(tmp_path / "s.yaml"), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert "evaluator 'synthetic': device 'cuda': CUDA is not available" in err and "\n" not in err


# -- CPU results are those of before -----------------------------------------------------------------
#: computed on main before the device option existed (commits f305877 and 46bc2dd agree), one torch thread;
#: a later change that deliberately alters CPU numbers must recompute them (float.hex of the same calls).
#: Bit for bit on the CPU kind they were recorded on, within float rounding elsewhere (tests/recorded_numbers.py).
#: Cell networks run in the NCHW layout here: it reproduces the code of before bit for bit (the
#: channels-last default agrees within float tolerance, tests/test_network.py).
BEFORE = {
    "meta_none": ["0x1.2c7c1c0000000p+2", "0x1.3e01a00000000p+2", "0x1.6a4aec0000000p+2", "0x1.5c28f5c28f5c3p-3"],
    "gtn_val_loss": "0x1.a5a370a3d70a4p+1",
    "real": ["0x1.5c28f5c28f5c3p-2", "0x1.d69d68f5c28f6p+0"],
    "naswot": "0x1.5440ff81b8c62p+7",
    "final": ["0x1.999999999999ap-3", "0x1.10e823d70a3d7p+1"],
}


def test_device_cpu_gives_bitwise_the_meta_losses_and_scores_of_before(tmp_path, monkeypatch):
    import gtn_search.evaluators.common as common

    config = load_config(None, {**TINY, "curriculum": "none", "augment": "crop_flip", "soft_labels": True,
                                "device": "cpu"})
    trainer = MetaTrainer(config, random_data())
    trainer.run(progress=False)
    assert_recorded(list(trainer.history["meta_loss"]) + [trainer.history["monitor_accuracy"][-1]], BEFORE["meta_none"])

    data28 = random_data((1, 28, 28), n=600)
    monkeypatch.setattr(common, "load_dataset", lambda name, root=None, **_: data28)
    with use_channels_last(False):
        nas = MetaTrainer(load_config(None, {**TINY, "learner": NAS_LEARNER, "monitor_every": 0, "device": "cpu"}), data28)
        nas.run(progress=False)
        teaching = nas.teaching_set().save(tmp_path / "ts.pt")
        # the architecture these numbers were measured with (sampled before inputs could repeat)
        arch = get_space("gtn-nas", allow_repeated_inputs=False).sample(np.random.default_rng(3))
        bp = blueprint_preset("mnist-tiny")
        gtn = make_evaluator("gtn", {"teaching_set": str(teaching), "val_size": 100}, device="cpu").evaluate(arch, bp, 7)
        assert_recorded([gtn.metrics["val_loss"]], [BEFORE["gtn_val_loss"]])
        real = make_evaluator("real", {"steps": 5, "batch_size": 16, "augment": "crop_flip", "val_size": 100,
                                       "device": "cpu"}).evaluate(arch, bp, 7)
        assert_recorded([real.score, real.metrics["val_loss"]], BEFORE["real"])
        assert_recorded([make_evaluator("naswot", {"batch_size": 16}, device="cpu").evaluate(arch, bp, 7).score],
                        [BEFORE["naswot"]])
        recipe = TrainConfig(epochs=0.5, batch_size=32, cutout=4, augment="crop_flip", eval_batch=50, device="cpu")
        final = train_final(arch, bp.model_copy(update={"channels": 4}), data28, recipe, seed=1)
        assert_recorded([final.test_accuracy, final.test_loss], BEFORE["final"])


# -- random draws on the CPU, tensors on the device (the meta device stands in for a GPU) ---------------
def test_augmentation_curricula_and_teaching_sets_follow_the_data_device():
    from gtn_search.augment import cutout, random_crop_flip
    from gtn_search.gtn.curriculum import Curriculum
    from gtn_search.gtn.learners import ConvLearnerSpec, make_learner
    from gtn_search.gtn.teaching_set import TeachingSet

    meta = torch.device("meta")
    g = torch.Generator().manual_seed(0)
    x = torch.empty(4, 3, 8, 8, device=meta)
    assert random_crop_flip(x, g).device == meta and cutout(x, g, 3).device == meta
    for kind in ("none", "shuffled_batch", "all_shuffled"):
        assert {t.device for t in Curriculum(kind, 3, 4, 5, 10).to(meta).sample(g)} == {meta}
    teaching = TeachingSet(torch.randn(3, 8, 1, 12, 12), torch.arange(24).view(3, 8) % 10, torch.full((3,), 0.1),
                           torch.full((3,), 0.5), "mnist", 10)
    learner, _ = make_learner(ConvLearnerSpec(channels=(4, 8), hidden=16), (1, 12, 12), 10, 0)
    params = teaching.to(meta).train(learner.to(meta))
    assert {p.device for p in params.values()} == {meta}
    assert random_data().to(meta).train_x.device == meta


# -- saved files are device-independent ----------------------------------------------------------------
class Elsewhere(torch.Tensor):
    """A tensor that is not a plain CPU tensor until ``.cpu()`` (what a CUDA tensor is to torch.save)."""

    def cpu(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.as_subclass(torch.Tensor)


def test_saved_files_hold_plain_cpu_tensors_only(tmp_path):
    weights = torch.arange(6.0).view(2, 3)
    payload = {"format": "f", "version": 1, "w": weights.as_subclass(Elsewhere),
               "nested": [{"m": torch.ones(2).as_subclass(Elsewhere)}, (torch.zeros(1).as_subclass(Elsewhere),)]}
    loaded = load_tensor_file(save_tensor_file(tmp_path / "x.pt", payload), "f", 1, "test file")
    assert type(loaded["w"]) is torch.Tensor and torch.equal(loaded["w"], weights)
    assert loaded["nested"][0]["m"].device.type == "cpu"


def test_the_device_is_not_stored_so_runs_and_studies_resume_on_another_device(tmp_path):
    assert "device" not in load_config(None, {"device": "cpu", "deterministic": True}).to_mapping()
    assert TrainConfig(device="cpu", deterministic=True).model_dump() == TrainConfig().model_dump()
    assert TrainConfig(amp="bf16").model_dump()["amp"] == "bf16"
    real = {"name": "real", "options": {"steps": 8}}
    assert SearchConfig.model_validate({"evaluator": {**real, "options": {"steps": 8, "device": "cuda"}}}).identity() \
        == SearchConfig.model_validate({"evaluator": real}).identity()
    base = {"study": str(tmp_path / "s.db"), "evaluator": {"name": "synthetic"}, "budget": {"trials": 4}}
    first = run_search(SearchConfig.model_validate({**base, "device": "cpu"}), progress=False)
    resumed = run_search(SearchConfig.model_validate({**base, "budget": {"trials": 6}, "device": "auto",
                                                      "evaluator": {"name": "synthetic"}}), progress=False)
    assert first.evaluated + first.cached == 4 and resumed.resumed


# -- workers and GPUs ----------------------------------------------------------------------------------
def test_workers_get_gpus_round_robin(monkeypatch):
    assert [gpu_for_worker(i, ["0", "1"]) for i in range(5)] == ["0", "1", "0", "1", "0"]
    assert gpu_for_worker(3, []) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert visible_gpus() == ["2", "5"]
    counter = multiprocessing.get_context("spawn").Value("i", 0)
    seen = []
    for _ in range(3):
        init_gpu_worker(counter, ["2", "5"])
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["2", "5", "2"]


class NoOptions(StrictModel):
    """Options of the test evaluators: none."""


class VisibleGPUEvaluator(Evaluator):
    """Reports the CUDA_VISIBLE_DEVICES of the worker that ran it."""

    Config = NoOptions

    def _evaluate(self, arch, blueprint, seed):  # type: ignore[no-untyped-def]
        # A barrier, not a sleep: each trial waits until both have started, so one worker cannot take both
        # trials however slowly the other starts (a 1 s sleep failed on a loaded CI machine).
        barrier = os.environ["GTN_TEST_BARRIER"]
        open(os.path.join(barrier, str(seed)), "w").close()
        deadline = time.monotonic() + 120.0
        while len(os.listdir(barrier)) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the other worker never took a trial")
            time.sleep(0.05)
        return Measurement(score=0.0, sgd_steps=0, images_seen=0, train_flops=0.0, eval_flops=0.0, params=0,
                           metrics={"gpu": os.environ.get("CUDA_VISIBLE_DEVICES")})


def test_local_worker_processes_each_get_their_gpu(monkeypatch, tmp_path):
    from gtn_search.executors import make_executor

    one_gpu(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7,9")
    monkeypatch.setenv("GTN_TEST_BARRIER", str(tmp_path))
    executor = make_executor("local", 2, None, 1, device="auto")
    try:
        evaluator = VisibleGPUEvaluator({}, device="cpu")
        arch, bp = get_space("gtn-nas").sample(np.random.default_rng(0)), blueprint_preset("mnist-tiny")
        for number in range(2):
            executor.submit(number, evaluator, arch, bp, number)
        results = []
        while len(results) < 2:
            results += executor.wait()
    finally:
        executor.shutdown()
    assert sorted(r.metrics["gpu"] for _, r, _ in results) == ["7", "9"]


# -- CUDA out of memory --------------------------------------------------------------------------------
class OutOfMemoryEvaluator(Evaluator):
    """Runs out of CUDA memory on every other trial."""

    Config = NoOptions

    def _evaluate(self, arch, blueprint, seed):  # type: ignore[no-untyped-def]
        if seed % 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
                                              "capacity of 79.1 GiB of which 1.2 GiB is free.\nmore detail")
        return Measurement(score=float(seed % 7), sgd_steps=1, images_seen=1, train_flops=1e6, eval_flops=0.0,
                           params=1)


def test_cuda_out_of_memory_fails_the_trial_with_one_line_and_the_search_goes_on(tmp_path):
    EVALUATORS.add("cuda-oom", OutOfMemoryEvaluator)
    try:
        summary = run_search(SearchConfig.model_validate({
            "study": str(tmp_path / "s.db"), "strategy": "random", "evaluator": "cuda-oom",
            "budget": {"trials": 8}, "device": "cpu"}), progress=False)
    finally:
        EVALUATORS.unregister("cuda-oom")
    from gtn_search.storage import Study

    study = Study(summary.study, create=False)
    try:
        trials = study.trials()
    finally:
        study.close()
    errors = {t.error for t in trials if t.status == "failed"}
    assert errors == {"CUDA out of memory (tried to allocate 2.00 GiB); lower the batch size or the network's size, "
                      "or run fewer workers per GPU"}
    assert summary.failed >= 1 and any(t.status == "ok" for t in trials) and len(trials) == 8


def test_cuda_out_of_memory_in_meta_training_is_one_line(monkeypatch):
    trainer = MetaTrainer(load_config(None, {**TINY, "device": "cpu"}), random_data())

    def oom() -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 512.00 MiB.")

    monkeypatch.setattr(trainer, "_step", oom)
    with pytest.raises(TrainingError, match=r"^meta-iteration 0: CUDA out of memory \(tried to allocate 512.00 MiB\)"):
        trainer.run(progress=False)


# -- mixed precision -----------------------------------------------------------------------------------
def test_bf16_autocast_runs_final_training_and_real_data_scoring_when_asked(monkeypatch):
    import gtn_search.evaluators.common as common

    data = random_data((1, 28, 28), n=300)
    monkeypatch.setattr(common, "load_dataset", lambda name, root=None, **_: data)
    arch, bp = get_space("gtn-nas").sample(np.random.default_rng(3)), blueprint_preset("mnist-tiny")
    losses = {}
    for amp in ("off", "bf16"):
        recipe = TrainConfig(epochs=0.3, batch_size=32, eval_batch=50, device="cpu", amp=amp)
        final = train_final(arch, bp, data, recipe, seed=1)
        real = make_evaluator("real", {"steps": 3, "batch_size": 16, "val_size": 50, "amp": amp}, device="cpu")
        losses[amp] = (final.test_loss, real.evaluate(arch, bp, 7).metrics["val_loss"])
    assert all(np.isfinite(losses["bf16"])) and losses["bf16"][0] != losses["off"][0] \
        and losses["bf16"][1] != losses["off"][1]


def test_the_cli_runs_on_the_device_it_is_given(tmp_path, capsys):
    (tmp_path / "s.yaml").write_text(f"study: {tmp_path / 's.db'}\nevaluator: synthetic\nbudget: {{trials: 3}}\n")
    assert main(["search", str(tmp_path / "s.yaml"), "--device", "cpu", "--no-progress"]) == 0
    assert "3 evaluated" in capsys.readouterr().out
