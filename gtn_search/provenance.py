"""Where a score was computed, recorded with it, and a warning when one study or comparison mixes devices.

The device is deliberately not part of a study's or comparison's identity (a run resumes on any
device, see :mod:`gtn_search.device`), but CPU and GPU scores of the same architecture are not
interchangeable: float rounding differences grow through a few dozen steps of training to the size
of seed-to-seed noise (measured on an H200: GTN-evaluator scores differ by up to 0.05, Spearman
0.90 between the CPU's and the GPU's ranking of 12 architectures; README "GPUs"). So every
evaluation records its device in the result's metrics (``metrics["device"]``), and summaries say
so when the scores they rank come from more than one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import torch

#: the metrics key of the device label
DEVICE_KEY = "device"
#: how rows written before devices were recorded are counted
UNRECORDED = "not recorded"


def device_label(device: torch.device) -> str:
    """``'cpu'``, ``'mps'`` or ``'cuda (<GPU name>)'``: the kind of device and, for a GPU, its model."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def devices_of(metrics: Iterable[Mapping[str, Any] | None]) -> Counter[str]:
    """How many results were computed on each device (rows without a label count as not recorded)."""
    return Counter(str((m or {}).get(DEVICE_KEY) or UNRECORDED) for m in metrics)


def devices_text(counts: Mapping[str, int]) -> str:
    """``'cpu (120), cuda (NVIDIA H200) (30)'``, most frequent first."""
    return ", ".join(f"{label} ({n:,})" for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def mixed_devices_warning(counts: Mapping[str, int], what: str) -> str | None:
    """One line when ``what`` (e.g. "this study's scores") comes from more than one recorded device;
    ``None`` otherwise (rows written before devices were recorded do not count as another device)."""
    recorded = {label: n for label, n in counts.items() if label != UNRECORDED and n}
    if len(recorded) < 2:
        return None
    return (f"warning: {what} were computed on {len(recorded)} devices: {devices_text(recorded)}; CPU and GPU "
            f"scores of one architecture differ by up to the size of seed-to-seed noise (README \"GPUs\"), so "
            f"compare scores from one device")
