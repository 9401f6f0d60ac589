"""Check PyTorch's channels-last CPU convolution gradients on this machine against float64.

    python benchmarks/conv_kernel_check.py [--out benchmarks/results/conv_kernel_check.json]

For the convolutions NAS cells use (1x1, 3x3, 1x3, 3x1, 5x5, 1x7, 7x1; stride 1 and 2) at the
channel counts and map sizes of NAS learners, computes ``aten.convolution_backward`` in float32
with channels-last tensors and compares its input and weight gradients with the float64 NCHW
result: relative max error (error / largest reference value). Float32 rounding gives about 1e-6;
a wrong kernel gives 1e-1 and more. Each kernel shape runs in its own process, since a wrong
kernel may also corrupt the heap and abort: such a shape is reported as ``crashed``. This is the
raw PyTorch op, not gtn-search's layers (which avoid the strided 1x1 kernel in the channels-last
layout: ``search_spaces.layout.Conv2d``); it tells whether a machine has the oneDNN problem seen on
an AMD EPYC of family 25 (README "Learner speed").
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

KERNELS = [(1, 1, 1), (1, 1, 2), (3, 3, 1), (3, 3, 2), (1, 3, 1), (3, 1, 1), (1, 3, 2), (3, 1, 2), (5, 5, 1),
           (1, 7, 1), (7, 1, 1)]
BATCHES, CHANNELS, SIZES = (20, 32), (4, 8, 16), (7, 8, 14, 16, 28)
BAD = 1e-3


def child(kh: int, kw: int, stride: int) -> None:
    """One line of JSON per shape, as soon as it is computed (a crash keeps the lines before it)."""
    import torch

    torch.manual_seed(0)
    for n in BATCHES:
        for c in CHANNELS:
            for h in SIZES:
                x = torch.randn(n, c, h, h, dtype=torch.float64)
                w = torch.randn(c, c, kh, kw, dtype=torch.float64)
                pad = [kh // 2, kw // 2]
                g = torch.randn_like(torch.nn.functional.conv2d(x, w, stride=stride, padding=pad))
                args = ([0], [stride, stride], pad, [1, 1], False, [0, 0], 1, [True, True, False])
                ref = torch.ops.aten.convolution_backward(g, x, w, *args)
                cl = torch.channels_last
                out = torch.ops.aten.convolution_backward(g.float().contiguous(memory_format=cl),
                                                          x.float().contiguous(memory_format=cl), w.float(), *args)
                errors = [((o.double() - r).abs().max() / r.abs().max()).item() for o, r in zip(out[:2], ref[:2])]
                print(json.dumps({"batch": n, "channels": c, "size": h, "input_error": errors[0],
                                  "weight_error": errors[1]}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/conv_kernel_check.json")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    import torch

    info = {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
        info.update({k: fields.get(k, "").strip() for k in ("vendor_id", "cpu family", "model", "model name")})
    except OSError:
        pass
    kernels = []
    for kh, kw, stride in KERNELS:
        proc = subprocess.run([sys.executable, __file__, "--child", str(kh), str(kw), str(stride)],
                              capture_output=True, text=True)
        rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        bad = [r for r in rows if max(r["input_error"], r["weight_error"]) > BAD]
        crashed = proc.returncode != 0
        expected = len(BATCHES) * len(CHANNELS) * len(SIZES)
        kernels.append({"kernel": f"{kh}x{kw}", "stride": stride, "shapes": len(rows), "of": expected,
                        "wrong": bad, "crashed": crashed,
                        "largest_error": max((max(r["input_error"], r["weight_error"]) for r in rows), default=None)})
        verdict = ("crashed after " + str(len(rows)) + " shapes; " if crashed else "") + \
            (f"{len(bad)} wrong" if bad else "all right")
        print(f"{kh}x{kw} stride {stride}: {verdict} (largest relative error "
              f"{kernels[-1]['largest_error']:.2g})", flush=True)
        for r in bad:
            print(f"    batch {r['batch']}, {r['channels']} channels, {r['size']}x{r['size']}: input "
                  f"{r['input_error']:.2g}, weight {r['weight_error']:.2g}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "threshold": BAD, "kernels": kernels}, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
