"""The issue's GPU check: NVML energy counter vs the integral of sampled power (target: 5 %).

Runs a fixed matrix-multiply load on one GPU for ``--seconds`` and compares the GPU's
cumulative energy counter with the trapezoid integral of ``nvmlDeviceGetPowerUsage`` sampled
every ``--period`` seconds over the same window (``luminary.energy.
compare_counter_and_sampled_power``). The load uses PyTorch, else CuPy, whichever is
installed; without either, or without a GPU, the script says why and exits 2.

    .venv/bin/python benchmarks/energy_gpu_check.py [--gpu 0] [--seconds 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from luminary.energy import compare_counter_and_sampled_power
from luminary.energy._nvml import nvml_status


def matmul_load(gpu: int, n: int) -> tuple[str, Callable[[], object]]:
    """A load function for ``compare_counter_and_sampled_power`` and the library behind it."""
    try:
        torch = importlib.import_module("torch")
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        device = torch.device(f"cuda:{gpu}")
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)

        def torch_step() -> object:
            for _ in range(10):
                a @ b
            torch.cuda.synchronize(device)
            return None

        return f"torch {torch.__version__} float32 {n}x{n} matmul", torch_step
    try:
        cp = importlib.import_module("cupy")
    except ImportError as exc:
        msg = "neither torch (with CUDA) nor cupy is installed to make a GPU load"
        raise SystemExit(msg) from exc
    with cp.cuda.Device(gpu):
        a = cp.random.standard_normal((n, n), dtype=cp.float32)
        b = cp.random.standard_normal((n, n), dtype=cp.float32)

    def cupy_step() -> object:
        with cp.cuda.Device(gpu):
            for _ in range(10):
                a @ b
            cp.cuda.Device(gpu).synchronize()
        return None

    return f"cupy {cp.__version__} float32 {n}x{n} matmul", cupy_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--period", type=float, default=0.02)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    readable = {s.device for s in nvml_status() if s.readable}
    if f"gpu{args.gpu}" not in readable:
        reasons = "; ".join(f"{s.device or 'nvml'}: {s.reason}" for s in nvml_status())
        print(f"no readable GPU {args.gpu}: {reasons}", file=sys.stderr)
        sys.exit(2)
    try:
        what, load = matmul_load(args.gpu, args.size)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    result = compare_counter_and_sampled_power(
        args.gpu, args.seconds, load, period_s=args.period, settle_s=args.settle
    )
    result["load"] = what
    for key, value in result.items():
        print(f"{key:22} {value}")
    diff = result["relative_difference"]
    verdict = "meets" if result["within_5_percent"] else "MISSES"
    print(f"\nverdict: sampled power vs counter {diff:+.2%}: {verdict} the 5 % target")
    if args.json:
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
