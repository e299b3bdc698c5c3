#!/usr/bin/env python
"""Time ``curiosity-sft prepare`` on all of ``../shared/data/raw`` and print the manifest's table.

The whole command is timed in a fresh process (imports and tokenizer loading included), because
that is what a user waits for. The budget in issue #4 is 60 s on 2 CPU cores.

    .venv/bin/python bench/bench_prepare.py [--input ../shared/data/raw] [--repeat 2] [--args '--max-length 1024']
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def table(manifest: dict) -> str:
    """The per-source markdown table docs/DATA.md shows."""
    cols = ["read", "exact_duplicate", "near_duplicate", "contaminated", "too_long", "train", "val"]
    lines = ["| source | " + " | ".join(cols) + " | test | train tokens p50 / p95 / max | share of train tokens |",
             "|---" * (len(cols) + 4) + "|"]
    for source, f in manifest["filters"].items():
        test = manifest["counts"]["test"].get(source, 0)
        ln = manifest["length"]["train"].get(source, {})
        share = manifest["mixing"]["after"].get(source, {}).get("share", 0)
        lines.append(f"| {source} | " + " | ".join(f"{f[c]:,}" for c in cols) + f" | {test:,} | "
                     f"{ln.get('p50', 0)} / {ln.get('p95', 0)} / {ln.get('max', 0)} | {share:.1%} |")
    return "\n".join(lines)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=str(ROOT.parent / "shared" / "data" / "raw"))
    p.add_argument("--repeat", type=int, default=1, help="runs; the fastest is reported")
    p.add_argument("--args", default="", help="more prepare options, e.g. '--max-length 1024'")
    p.add_argument("--manifest", help="copy the manifest here")
    a = p.parse_args()
    env = {**os.environ, "CURIOSITY_SFT_CACHE": os.environ.get("CURIOSITY_SFT_CACHE", str(ROOT / ".cache"))}
    times, cpu = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeat):
            out = Path(tmp) / f"prepared{r}"  # a new folder each time: the same command a user runs first
            t0, c0 = time.perf_counter(), _children_cpu()
            subprocess.run([sys.executable, "-m", "curiosity_sft", "prepare", "--input", a.input, "--output", str(out),
                            *a.args.split()], check=True, env=env, cwd=ROOT, capture_output=True)
            times.append(time.perf_counter() - t0)
            cpu.append(_children_cpu() - c0)
        manifest = json.loads((out / "manifest.json").read_text())
    if a.manifest:
        Path(a.manifest).write_text(json.dumps(manifest, indent=2) + "\n")
    print(table(manifest))
    print(f"\nprepare wall time: {min(times):.1f} s (best of {len(times)}: {', '.join(f'{t:.1f}' for t in times)}) "
          f"on {os.cpu_count()} CPU cores; CPU time (user + system) {min(cpu):.1f} s "
          f"({', '.join(f'{t:.1f}' for t in cpu)}), which other jobs on the machine disturb less; "
          f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
