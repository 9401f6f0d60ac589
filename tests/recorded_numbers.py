"""Pinned float results ("the code of before gives these bits") and the CPU kind they were recorded on.

Bit-for-bit float results depend on the CPU's instruction set and vendor: oneDNN and MKL pick other
kernels (other summation orders) on an AVX-512 Intel CPU than on the AVX2 AMD EPYC where the pinned
values were written by the code of before. On that CPU kind the tests compare bits; on any other
they compare within float rounding amplified by a few training steps (the old code cannot be rerun
there, its values are unknown), so a changed algorithm still fails while another CPU does not.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

#: where the pinned values were recorded: torch's CPU capability and the CPU vendor
RECORDED_ON = ("AVX2", "AuthenticAMD")


def cpu_kind() -> tuple[str, str]:
    """(torch's CPU capability, the vendor id from /proc/cpuinfo or '')."""
    vendor = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return torch.backends.cpu.get_cpu_capability(), vendor


def assert_recorded(actual: list[float], recorded: list[str], rel: float = 2e-3, abs_: float = 0.021) -> None:
    """``actual`` equals the recorded ``float.hex`` values bit for bit on the recording CPU kind, and
    within ``rel`` (or ``abs_``, e.g. one or two images of a 100-image accuracy) elsewhere."""
    if cpu_kind() == RECORDED_ON:
        assert [float(v).hex() for v in actual] == recorded
        return
    expected = [float.fromhex(h) for h in recorded]
    close = [math.isclose(a, e, rel_tol=rel, abs_tol=abs_) for a, e in zip(actual, expected)]
    assert len(actual) == len(expected) and all(close), (cpu_kind(), actual, expected)
