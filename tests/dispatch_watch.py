"""Which aten operators a piece of code calls, and with what (the tests that check a code path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode


def watch_ops(step: Callable[[], Any], seen: Callable[[str, tuple], None]) -> Any:
    """Run ``step``; ``seen(name, args)`` for every aten call it makes (``name`` without overload)."""

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            seen(func.overloadpacket.__name__, args)
            return func(*args, **(kwargs or {}))

    with Watch():
        return step()
