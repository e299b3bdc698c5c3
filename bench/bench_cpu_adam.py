"""The optimizer step ZeRO-Offload runs in CPU RAM: DeepSpeed's CPU Adam against torch's AdamW.

    .venv/bin/python bench/bench_cpu_adam.py [--params 50] [--repeat 5] [--torch-only]

Why the engine steps with torch's fused AdamW on CPU (training/optimizer.py) and ZeRO-Offload in
CPU RAM: the step over all fp32 master weights runs on the CPU every optimizer step. DeepSpeed's
CPU Adam needs the `deepspeed` extra (it compiles on first use); `--torch-only` compares torch's
fused and foreach AdamW alone. Figures go in docs/PERFORMANCE.md.
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
    ap.add_argument("--torch-only", action="store_true", help="torch's fused and foreach AdamW, without DeepSpeed")
    a = ap.parse_args()
    n = int(a.params * 1e6)
    kw = {"lr": 1e-3, "weight_decay": 0.01}
    runs = {"torch AdamW foreach": lambda ps: torch.optim.AdamW(ps, foreach=True, **kw),
            "torch AdamW fused": lambda ps: torch.optim.AdamW(ps, fused=True, **kw)}
    if not a.torch_only:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        runs = {"DeepSpeedCPUAdam": lambda ps: DeepSpeedCPUAdam(ps, adamw_mode=True, **kw), **runs}
    times = {name: seconds_per_step(make, n, a.repeat) for name, make in runs.items()}
    ref_name = next(iter(runs))
    ref = times[ref_name]
    print(f"{a.params:g}M fp32 parameters, {torch.get_num_threads()} threads, mean of {a.repeat} steps after a warm-up step")
    for name, t in times.items():
        print(f"  {name:22s} {t * 1000:8.1f} ms/step   {t / ref:5.2f}x {ref_name}'s time")


if __name__ == "__main__":
    main()
