"""ONNX export of a built network, checked against PyTorch in onnxruntime.

How the export works:

1. :func:`prepare_for_export` copies the network (the caller's module is never changed), moves the
   copy to the CPU in float32 and eval mode, and makes it a plain inference graph:

   * **weight norm folded**: the blueprint's weight norm is a
     ``torch.nn.utils.parametrizations.weight_norm`` parametrization (``weight = g * v / ||v||``);
     ``torch.nn.utils.parametrize.remove_parametrizations(..., leave_parametrized=True)`` replaces it
     by the plain weight it computes, so the copy's outputs are bit-for-bit those of the original;
   * **auxiliary head dropped**: the head only feeds the training loss (eval mode never runs it), so
     it is removed and the model has one output, the logits;
   * **drop-path off** (probability 0; it is also inactive in eval mode).

2. :func:`export_onnx` traces the copy with torch's ``torch.export``-based ONNX exporter
   (``torch.onnx.export(..., dynamo=True)``, the default and maintained exporter since torch 2.9; the
   TorchScript one is deprecated) at opset :data:`ONNX_OPSET`, with a dynamic batch axis: input
   ``images`` ``[batch, C, H, W]`` float32, output ``logits`` ``[batch, num_classes]``. Weights are stored
   inside the one ``.onnx`` file (no external data file). Metadata properties record the gtn-search
   version, the architecture hash, the blueprint, and the input normalisation when it is known.

3. :func:`check_onnx` runs the file in onnxruntime (``CPUExecutionProvider``) on a seeded batch
   (standard-normal images, or real images given by the caller) and compares the logits with PyTorch's
   (the original network in eval mode): the largest absolute difference must be at most
   :data:`TOLERANCE` (1e-4). A model that fails the check is not kept (:class:`OnnxCheckError` names the
   difference and the tolerance).

Inputs: the model expects exactly what the PyTorch network expects, images normalised per channel with
the training split's statistics, ``(x - mean) / std`` (``DatasetTensors.mean`` / ``.std``; for MNIST about
0.1307 / 0.3081), in NCHW layout. Networks whose blueprint normalises with batch statistics
(``norm: batch_stats`` or ``mean_only``, the GTN learner style) do so in the ONNX model too, so their
outputs depend on the whole batch, as in PyTorch. Running the model::

    import numpy as np, onnxruntime as ort
    session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"images": images.astype(np.float32)})[0]   # images: [N, C, H, W]

The packages ``onnx``, ``onnxruntime`` and ``onnxscript`` are the optional extra ``gtn-search[export]``;
without them :func:`require_export_packages` raises :class:`~gtn_search.errors.MissingPackageError`.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from gtn_search import __version__
from gtn_search.errors import GTNSearchError, MissingPackageError

#: ONNX opset written (torch's ONNX function library's own opset: no version conversion;
#: onnxruntime >= 1.14 runs it).
ONNX_OPSET = 18
#: Largest absolute difference between onnxruntime's and PyTorch's logits accepted by the check.
TOLERANCE = 1e-4
#: Size of the seeded batch the check runs by default.
CHECK_BATCH = 8
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
#: The optional extra ``gtn-search[export]``: what the export and its check import.
EXPORT_PACKAGES = ("onnx", "onnxruntime", "onnxscript")


class OnnxExportError(GTNSearchError):
    """torch's exporter could not translate the network (e.g. a third-party op without an ONNX form)."""


class OnnxCheckError(GTNSearchError):
    """onnxruntime's outputs differ from PyTorch's by more than the tolerance; ``check`` has the figures."""

    def __init__(self, message: str, check: OnnxCheck) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class OnnxCheck:
    """The onnxruntime-versus-PyTorch comparison of one exported model."""

    max_abs_diff: float
    tolerance: float
    batch: int
    passed: bool

    def summary(self) -> str:
        """E.g. ``max |diff| 3.1e-06 <= 1e-4 on a batch of 8``."""
        relation = "<=" if self.passed else ">"
        tolerance = f"{self.tolerance:.0e}".replace("e-0", "e-").replace("e+0", "e+")  # 1e-4, not 1e-04
        return f"max |diff| {self.max_abs_diff:.1e} {relation} {tolerance} on a batch of {self.batch}"


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: the file, its size, the export time and the check."""

    path: Path
    size_bytes: int
    export_seconds: float
    opset: int
    check: OnnxCheck | None

    def summary(self) -> str:
        """The one line the CLI prints: ``wrote model.onnx (onnxruntime check: ...)``."""
        checked = f" (onnxruntime check: {self.check.summary()})" if self.check is not None else " (not checked)"
        return f"wrote {self.path}{checked}"


def require_export_packages() -> None:
    """Raise :class:`MissingPackageError` naming every missing package of the ``export`` extra."""
    missing = []
    for name in EXPORT_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MissingPackageError(
            f"ONNX export needs the package{'s' if len(missing) > 1 else ''} {', '.join(missing)}: "
            f"pip install 'gtn-search[export]'"
        )


def prepare_for_export(module: nn.Module) -> nn.Module:
    """A CPU float32 eval-mode copy of ``module`` with weight norm folded, no auxiliary head, no drop-path.

    The copy computes the same logits as ``module`` in eval mode (bit for bit on the CPU); ``module``
    itself is left as it was.
    """
    model = copy.deepcopy(module).cpu().float().eval()
    for sub in model.modules():
        if parametrize.is_parametrized(sub):
            # A deep copy shares the original's generated ``Parametrized<Conv2d>`` class, and removing a
            # parametrization deletes its property from that class, which would break the original
            # too: give the copy a class of its own first (same bases, same attributes).
            cls = type(sub)
            sub.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            for name in list(sub.parametrizations.keys()):  # type: ignore[union-attr]
                parametrize.remove_parametrizations(sub, name, leave_parametrized=True)
    if getattr(model, "aux_head", None) is not None:
        model.aux_head = None  # only the training loss reads it; eval mode returns the logits alone
    set_drop_path = getattr(model, "set_drop_path", None)
    if callable(set_drop_path):
        set_drop_path(0.0)
    model.requires_grad_(False)
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def export_onnx(
    module: nn.Module,
    path: str | os.PathLike[str],
    input_shape: tuple[int, int, int],
    *,
    metadata: Mapping[str, object] | None = None,
    check: bool = True,
    inputs: torch.Tensor | None = None,
    tolerance: float = TOLERANCE,
) -> OnnxExport:
    """Write ``module`` (a built network, any device, weight norm and auxiliary head allowed) to ``path``.

    ``input_shape`` is ``(C, H, W)`` of one image (the blueprint's ``input_shape``); the batch axis is
    dynamic. ``metadata`` goes into the model's metadata properties (values as strings, mappings and
    lists as JSON). With ``check`` (the default) the written model is run in onnxruntime on ``inputs``
    (or a seeded batch of :data:`CHECK_BATCH`) and compared with ``module``; a model that fails is
    removed and :class:`OnnxCheckError` raised. The file is written through a temporary name, so a
    failed export never leaves a partial or unchecked model at ``path``.
    """
    require_export_packages()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = prepare_for_export(module)
    example = torch.zeros(2, *input_shape)  # batch 2: torch.export specialises sizes 0 and 1
    start = time.perf_counter()
    try:
        program = torch.onnx.export(
            model, (example,), None, dynamo=True, opset_version=ONNX_OPSET, verbose=False,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
        )
    except Exception as exc:  # torch.export / onnxscript errors come in many types
        raise OnnxExportError(f"ONNX export failed: {_first_line(exc)}") from exc
    assert program is not None  # f=None with dynamo=True returns the ONNXProgram
    props = {"gtn_search.version": __version__, "gtn_search.input": _INPUT_NOTE}
    for key, value in (metadata or {}).items():
        props[f"gtn_search.{key}"] = value if isinstance(value, str) else json.dumps(value)
    program.model.metadata_props.update(props)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        program.save(tmp, external_data=False)
        seconds = time.perf_counter() - start
        result = check_onnx(tmp, module, inputs, tolerance=tolerance, name=out) if check else None
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return OnnxExport(out, out.stat().st_size, seconds, ONNX_OPSET, result)


_INPUT_NOTE = ("images [batch, C, H, W] float32, normalised per channel as in training: (x - mean) / std "
               "with the training split's mean and std (gtn_search.input_mean / input_std when recorded)")


def check_onnx(
    path: str | os.PathLike[str],
    module: nn.Module,
    inputs: torch.Tensor | None = None,
    *,
    batch: int = CHECK_BATCH,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    raise_on_failure: bool = True,
    name: str | os.PathLike[str] | None = None,
) -> OnnxCheck:
    """Run the ONNX model at ``path`` in onnxruntime and compare its logits with ``module``'s (eval mode).

    ``inputs``: a normalised ``[N, C, H, W]`` batch; default ``batch`` standard-normal images drawn from
    a generator seeded with ``seed``, shaped as the model's input. Returns the comparison; with
    ``raise_on_failure`` a difference above ``tolerance`` raises :class:`OnnxCheckError` (``name``: the
    path shown in its message, default ``path``).
    """
    require_export_packages()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if inputs is None:
        c, h, w = session.get_inputs()[0].shape[1:]
        inputs = torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(seed))
    inputs = inputs.detach().to("cpu", torch.float32)
    got = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: inputs.numpy()})[0])
    expected = _pytorch_logits(module, inputs)
    diff = float((got.double() - expected.double()).abs().max()) if got.shape == expected.shape else float("inf")
    result = OnnxCheck(diff, tolerance, len(inputs), diff <= tolerance)
    if raise_on_failure and not result.passed:
        shape = "" if got.shape == expected.shape else f" (output shape {tuple(got.shape)}, PyTorch's " \
                                                       f"{tuple(expected.shape)})"
        raise OnnxCheckError(f"{name or path}: onnxruntime check failed: {result.summary()}{shape}; the ONNX "
                             f"model does not reproduce the PyTorch network and was not kept", result)
    return result


def _pytorch_logits(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``module``'s logits for ``inputs`` in eval mode, on its own device, returned on the CPU."""
    was_training = module.training
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    module.eval()
    try:
        with torch.no_grad():
            out = module(inputs.to(device))
    finally:
        module.train(was_training)
    logits = out[0] if isinstance(out, tuple) else out
    return logits.detach().float().cpu()


__all__ = [
    "CHECK_BATCH", "EXPORT_PACKAGES", "ONNX_OPSET", "TOLERANCE", "OnnxCheck", "OnnxCheckError", "OnnxExport",
    "OnnxExportError", "check_onnx", "export_onnx", "prepare_for_export", "require_export_packages",
]
