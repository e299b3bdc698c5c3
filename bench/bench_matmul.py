"""The machine's sustained matmul rate, the denominator of every MFU figure we report.

Usage: .venv/bin/python bench/bench_matmul.py [--seconds 2]
Prints fp32 and bf16 GFLOP/s for square matmuls on the current torch thread count.
"""

from __future__ import annotations

import argparse
import json

import torch

from curiosity_sft.training.telemetry import measure_matmul_flops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    res = {"threads": torch.get_num_threads()}
    for n in (512, 1024, 2048):
        res[f"fp32_n{n}_gflops"] = round(measure_matmul_flops(n, a.seconds) / 1e9, 1)
    res["bf16_n512_gflops"] = round(measure_matmul_flops(512, a.seconds, torch.bfloat16) / 1e9, 2)
    res["fp32_peak_gflops"] = max(v for k, v in res.items() if k.startswith("fp32"))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
