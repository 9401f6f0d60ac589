"""Where tensors live: one device option for every command, worker GPUs, speed and determinism.

Every configuration that trains or scores networks takes ``device: auto|cpu|cuda|cuda:N|mps``
(:data:`DeviceSpec`); ``auto`` is CUDA when available, else CPU. The spec is a plain string in the
configs and is resolved (:func:`resolve_device`) in the process that runs the work, so a config or a
study written on a GPU machine loads and runs on a CPU-only one. Nothing saved depends on the
device: :func:`gtn_search.tensorfile.save_tensor_file` writes every tensor from the CPU and files
are read with ``map_location='cpu'``; the device is excluded from every stored config.

Random draws (data order, augmentation, curricula) come from CPU ``torch.Generator`` objects on
every device and are moved afterwards, so CPU results are exactly those of before this option and
a GPU run draws the same batches. Floating point on a GPU differs from the CPU in rounding; with
:func:`device_settings` (``deterministic=True``) repeated GPU runs, and resumes, are bit-identical
where PyTorch has deterministic kernels (it raises on an op that has none).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, SerializerFunctionWrapHandler, StringConstraints, model_serializer

from gtn_search.configio import StrictModel
from gtn_search.errors import ConfigError
from gtn_search.host_memory import retain_freed_memory

#: The device option of every configuration: auto, cpu, cuda, cuda:N or mps.
DeviceSpec = Annotated[str, StringConstraints(pattern=r"^(auto|cpu|cuda|cuda:\d+|mps)$")]
#: Mixed precision for real-data training and scoring: off, or bfloat16 autocast.
AmpMode = Literal["off", "bf16"]


class DeviceOption(StrictModel):
    """Mixin of option models: ``device`` (``None``: the command's or the search's device).

    Left out of every dump (stored configs, study identities, cache keys): where a result was
    computed is not part of what it is.
    """

    device: DeviceSpec | None = Field(default=None, exclude=True)


class AmpOption(StrictModel):
    """Mixin of option models: ``amp: off|bf16``; dumped only when on, so older dumps stay valid."""

    amp: AmpMode = "off"

    @model_serializer(mode="wrap")
    def _amp_only_when_on(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if self.amp == "off":
            data.pop("amp", None)
        return data


_SPEC = re.compile(r"^(auto|cpu|cuda|cuda:(\d+)|mps)$")


def _no_cuda_reason() -> str:
    if torch.version.cuda is None:
        return f"torch {torch.__version__} was built without CUDA"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) found no GPU"


def resolve_device(spec: str | torch.device | None) -> torch.device:
    """The ``torch.device`` for a spec, checked against this machine; one-line ConfigError if unusable."""
    if isinstance(spec, torch.device):
        return spec
    text = "auto" if spec is None else str(spec)
    match = _SPEC.match(text)
    if match is None:
        raise ConfigError(f"device '{text}': expected auto, cpu, cuda, cuda:N or mps")
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device 'mps': Apple MPS is not available on this machine (torch {torch.__version__}); "
                              f"use device: cpu or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise ConfigError(f"device '{text}': CUDA is not available on this machine ({_no_cuda_reason()}); "
                          f"use device: cpu or auto")
    if match.group(2) is not None:
        index, count = int(match.group(2)), torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"device '{text}': only {count} CUDA device(s) visible (cuda:0..cuda:{count - 1}); "
                              f"check CUDA_VISIBLE_DEVICES or pick another index")
        return torch.device("cuda", index)
    return torch.device("cuda", 0)


def check_device(spec: str | None, where: str = "device") -> None:
    """Fail early (one line naming ``where``) if ``spec`` cannot be used on this machine."""
    try:
        resolve_device(spec)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


# -- workers and GPUs ------------------------------------------------------------------------------
def spreads_over_gpus(spec: str | None) -> bool:
    """Whether workers running ``spec`` should each get a GPU of their own (auto/cuda with CUDA present)."""
    return (spec in (None, "auto", "cuda")) and torch.cuda.is_available()


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (ids or UUIDs)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip()]
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def gpu_for_worker(index: int, gpus: Sequence[str]) -> str | None:
    """Round-robin: worker ``index`` gets ``gpus[index % len(gpus)]`` (several workers may share one)."""
    return gpus[index % len(gpus)] if gpus else None


def init_gpu_worker(counter: Any, gpus: Sequence[str]) -> None:
    """Pool initializer: give this worker its round-robin GPU before CUDA is initialised in it.

    ``counter`` is a shared ``multiprocessing.Value('i')``: each new worker (also in a rebuilt
    pool) takes the next index. The worker then sees one GPU, as ``cuda``/``cuda:0``.
    """
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    gpu = gpu_for_worker(index, gpus)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


# -- speed and determinism ---------------------------------------------------------------------------
@contextlib.contextmanager
def device_settings(device: torch.device, deterministic: bool = False) -> Iterator[None]:
    """On CUDA: cuDNN benchmark mode (fastest kernels), or with ``deterministic`` PyTorch's
    deterministic algorithms and cuDNN kernels (bit-identical reruns and resumes). On every device,
    the process keeps freed host memory for reuse from the first training on
    (``gtn_search.host_memory``)."""
    retain_freed_memory()
    if device.type != "cuda":
        yield
        return
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
              torch.are_deterministic_algorithms_enabled())
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[0], before[1]
        torch.use_deterministic_algorithms(before[2])


def autocast(device: torch.device, amp: AmpMode) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast when ``amp == 'bf16'`` (forward passes only; weights stay float32)."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class LossWatch:
    """Non-finite loss detection without a host-device sync per step.

    ``add`` keeps each step's loss on the device; every ``every`` steps (and on ``check``) one sync
    tells whether any was NaN/inf, and returns the first such ``(step, value)``.
    """

    def __init__(self, every: int = 64) -> None:
        self.every = every
        self._losses: list[torch.Tensor] = []
        self._steps: list[int] = []

    def add(self, step: int, loss: torch.Tensor) -> tuple[int, float] | None:
        self._losses.append(loss.detach())
        self._steps.append(step)
        return self.check() if len(self._losses) >= self.every else None

    def check(self) -> tuple[int, float] | None:
        if not self._losses:
            return None
        losses, steps = torch.stack(self._losses), self._steps
        self._losses, self._steps = [], []
        bad = torch.nonzero(~torch.isfinite(losses))
        if len(bad) == 0:
            return None
        first = int(bad[0, 0])
        return steps[first], float(losses[first])


def host_to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor (random draws, indices) on ``device``; to CUDA through pinned memory without
    blocking, so the host does not wait for the GPU; the tensor itself on the CPU."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def memory_limit(device: torch.device) -> int | None:
    """Bytes free on a CUDA device (for refusing too-large networks up front); ``None`` elsewhere (host memory)."""
    return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None


# -- out of memory ---------------------------------------------------------------------------------
def oom_message(exc: BaseException) -> str | None:
    """``CUDA out of memory (tried to allocate X)`` for a device out-of-memory error (and the cache
    freed), ``None`` for anything else."""
    if not isinstance(exc, torch.cuda.OutOfMemoryError):
        return None
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    detail = re.search(r"Tried to allocate [\d.]+ \w+", first)
    if torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    tried = f" ({detail.group(0)[0].lower()}{detail.group(0)[1:]})" if detail else ""
    return f"CUDA out of memory{tried}"


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (nested dicts, lists, tuples) moved to the CPU, for saving."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cpu(v) for v in value)
    return value
