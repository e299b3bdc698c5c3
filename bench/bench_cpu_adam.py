"""The optimizer step ZeRO-Offload runs in CPU RAM: DeepSpeed's CPU Adam against torch's AdamW.

    .venv/bin/python bench/bench_cpu_adam.py [--params 50] [--repeat 5]

Why `training/zero.py` hands DeepSpeed its compiled CPU Adam when the launcher config offloads
the optimizer: the step over all fp32 master weights runs on the CPU every optimizer step. Needs
the `deepspeed` extra (its CPU Adam compiles on first use). Figures go in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch


def seconds_per_step(make: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer], n: int, repeat: int) -> float:
    g = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(n, generator=g))
    p.grad = torch.randn(n, generator=g)
    opt = make([p])
    opt.step()  # state creation and, for DeepSpeed, the compiled kernel's first call
    t = time.perf_counter()
    for _ in range(repeat):
        opt.step()
    return (time.perf_counter() - t) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=float, default=50, help="millions of fp32 parameters")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    n = int(a.params * 1e6)
    kw = {"lr": 1e-3, "weight_decay": 0.01}
    runs = {"DeepSpeedCPUAdam": lambda ps: DeepSpeedCPUAdam(ps, adamw_mode=True, **kw),
            "torch AdamW foreach": lambda ps: torch.optim.AdamW(ps, foreach=True, **kw),
            "torch AdamW fused": lambda ps: torch.optim.AdamW(ps, fused=True, **kw)}
    times = {name: seconds_per_step(make, n, a.repeat) for name, make in runs.items()}
    ds = times["DeepSpeedCPUAdam"]
    print(f"{a.params:g}M fp32 parameters, {torch.get_num_threads()} threads, mean of {a.repeat} steps after a warm-up step")
    for name, t in times.items():
        print(f"  {name:22s} {t * 1000:8.1f} ms/step   {t / ds:5.2f}x DeepSpeedCPUAdam's time")


if __name__ == "__main__":
    main()
