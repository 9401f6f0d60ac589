"""Benchmark: stride-1 max pooling outside autograd as a separable maximum (``search_spaces.ops.separable_max_pool``).

    python benchmarks/max_pool_eval.py [--archs 6] [--rounds 3] [--threads 2] [--data-root ../shared/data] \
        --out benchmarks/results/max_pool_eval.json

PyTorch's CPU max-pooling kernel computes the argmax indices even when nothing will be
differentiated, and is slow on few-channel channels-last maps. Outside autograd (scoring on
validation images, test-set evaluation) a stride-1 max pool is the maximum over k shifted rows, then
over k shifted columns, computed a few images at a time; a maximum is exact, so the results are
bit for bit the kernel's.

1. Kernels alone, without autograd, on the validation batches the evaluators score (1,000 images of
   4, 8 and 16 channels): PyTorch's kernel against the separable maximum, and that both are equal.
2. Whole work with the separable path off (``ops.separable_max_pools = False``, the code of before)
   and on, in interleaved rounds, on ``--archs`` random gtn-nas cells: one GTN-evaluator trial, the
   same with 4 seeds stacked, one real-data trial (their training steps are unchanged: only the
   scoring of 1,000 validation images is), and the test-set evaluation of a ``mnist-search``
   network as final training ends it (10,000 images in batches of 1,000). Every result must be
   identical (largest difference 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from grad_layout import gtn_trial, per_call_ms, run_benchmark
from norm_layout import real_trial

from gtn_search.data import load_dataset
from gtn_search.final_train import _evaluate
from search_spaces import ops
from search_spaces.blueprint import blueprint_preset
from search_spaces.network import build

SETTINGS = {"off": False, "on": True}
#: (kernel size, stride, padding, ceil mode) of the cells' stride-1 max pools (2x2 after its replicate pad)
POOLS = {"3x3": (3, 1, 1, False), "5x5": (5, 1, 2, False), "2x2": (2, 1, 0, True)}
SHAPES = [(1000, 4, 28, 28), (1000, 8, 14, 14), (1000, 16, 28, 28)]


def kernels() -> dict[str, dict[str, float]]:
    """Milliseconds per call of PyTorch's kernel and of the separable maximum, without autograd."""
    out = {}
    with torch.no_grad():
        for shape in SHAPES:
            x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
            for name, (k, s, p, ceil) in POOLS.items():
                pool = torch.nn.MaxPool2d(k, stride=s, padding=p, ceil_mode=ceil)
                separable = ops.separable_max_pool(pool, x)
                assert separable is not None and torch.equal(separable, pool(x))
                out[f"{name} on {'x'.join(map(str, shape))}"] = {
                    "kernel": per_call_ms(lambda: F.max_pool2d(x, k, s, p, ceil_mode=ceil), 10),
                    "separable": per_call_ms(lambda: ops.separable_max_pool(pool, x), 10)}
    return out


def test_evaluation(arch, data_root: str):  # type: ignore[no-untyped-def]
    """The test-set evaluation that ends a final training (mnist-search, 10,000 images, batches of 1,000)."""
    data = load_dataset("mnist", data_root)
    net = build(arch, blueprint_preset("mnist-search").model_copy(update={"num_classes": 10}), seed=0)

    def step() -> list[torch.Tensor]:
        return [torch.tensor(_evaluate(net, data.test_x, data.test_y, 1000, "off"), dtype=torch.float64)]
    return step


def cells_with_a_max_pool(archs: list) -> dict[str, int]:
    """How many of the architectures' normal and reduction cells have a max pool."""
    pools = sum(any(op.startswith("max_pool") for node in cell.nodes for _, op in node)
                for a in archs for cell in (a.normal, a.reduce))
    print(f"{len(archs)} cells, {pools} of their {2 * len(archs)} normal/reduction cells with a max pool", flush=True)
    return {"cells_with_a_max_pool": pools}


def main() -> None:
    run_benchmark(__doc__, SETTINGS, lambda value: setattr(ops, "separable_max_pools", value),
                  "the separable maximum", kernels,
                  lambda args: {"GTN-evaluator trial": lambda a: gtn_trial(a, args.data_root),
                                "GTN-evaluator trial, 4 seeds stacked": lambda a: gtn_trial(a, args.data_root, 4),
                                "real-data trial": lambda a: real_trial(a, args.data_root),
                                "test-set evaluation, mnist-search": lambda a: test_evaluation(a, args.data_root)},
                  cells_with_a_max_pool)


if __name__ == "__main__":
    main()
