"""Keep freed host memory in the process, so that tensors reuse it instead of faulting in fresh pages.

glibc's ``malloc`` serves large blocks with ``mmap`` and hands them back with ``munmap`` when they
are freed (above 32 MiB always, smaller ones depending on its adaptive threshold), and trims the top
of the heap back to the OS. Training allocates and frees the same large activations at every step,
so each one is faulted in page by page again: evaluating four stacked replicas of a small learner on
1,000 validation images took 1.8 s instead of 0.8 s, and Dask's default trim threshold made a
GTN-evaluator trial 2.6x slower (``benchmarks/dask_malloc.py``). :func:`retain_freed_memory` tells
glibc (``mallopt``) to serve every block from the heap and never trim it, once per process, the
first time any training starts (``gtn_search.device.device_settings``). A process then keeps its
peak memory until it exits, which is what a training or search worker process needs anyway.

Set ``GTN_SEARCH_RETAIN_MEMORY=0`` to keep glibc's defaults. Other C libraries: no-op.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4

_applied: bool | None = None


def retention_enabled() -> bool:
    """Whether this process will keep freed memory once training starts (Linux, not switched off)."""
    return sys.platform.startswith("linux") and os.environ.get("GTN_SEARCH_RETAIN_MEMORY", "1") != "0"


def retain_freed_memory() -> bool:
    """Switch glibc to keep freed memory for reuse (idempotent); whether it is in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not retention_enabled():
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_MAX, 0) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
                    and mallopt(_M_TOP_PAD, 64 << 20))
    return _applied


def retaining_freed_memory() -> bool:
    """Whether :func:`retain_freed_memory` has taken effect in this process."""
    return bool(_applied)
