"""The vocabulary head's cost: the plain head (all logits at once) against loss.py's chunked head.

    flock /tmp/heavy.lock .venv/bin/python bench/bench_head.py [--positions 2048] [--repeat 2] [--out FILE]

One forward + backward of the head and cross-entropy over ``--positions`` labelled positions, for
SmolLM2-135M's head (576 x 49,152) and DeepSeek-R1-Distill-Qwen-1.5B's (1,536 x 151,936), fp32,
the weight trained (a full fine-tune). Each case runs in a fresh subprocess; its peak is the
kernel's ``VmHWM`` above the RSS once weight and hidden states exist (``/proc/self/clear_refs``
resets the counter), so it is what the head and loss add. Seconds are the median of ``--repeat``
after one warm-up. ``--rows`` sweeps the chunk size for SmolLM2's head.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEADS = {"SmolLM2-135M": (576, 49152), "R1-Distill-Qwen-1.5B": (1536, 151936)}


def _kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(key)


def child(d: int, vocab: int, positions: int, kind: str, rows: int | None, repeat: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    from curiosity_sft.training.loss import chunk_rows, head_loss

    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(d, vocab, bias=False)
    hidden = torch.randn(positions, d, generator=g, requires_grad=True)
    targets = torch.randint(0, vocab, (positions,), generator=g)

    def once() -> None:
        loss = (F.cross_entropy(head(hidden), targets, reduction="sum") if kind == "plain"
                else head_loss(head, hidden, targets, rows=rows))
        loss.backward()
        head.weight.grad = hidden.grad = None

    once()  # warm-up: first-call allocations and kernel selection
    base = _kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return {"seconds": statistics.median(times), "peak_above_gib": (_kib("VmHWM") - base) / (1 << 20),
            "rows": rows or (chunk_rows(vocab, d) if kind == "chunked" else positions)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--positions", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--rows", default="64,1024", help="extra chunk sizes to try on SmolLM2's head")
    ap.add_argument("--out", default="bench/results/bench_head.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(**json.loads(a.child))))
        return
    cases = []
    for name, (d, vocab) in HEADS.items():
        cases += [(name, d, vocab, "plain", None), (name, d, vocab, "chunked", None)]
        if name == "SmolLM2-135M":
            cases += [(name, d, vocab, "chunked", int(r)) for r in a.rows.split(",") if r]
    import os

    results = {"positions": a.positions, "repeat": a.repeat, "load_before": os.getloadavg()[0], "cases": []}
    print("| head (hidden x vocabulary) | kind | positions per chunk | seconds (fwd+bwd) | peak above inputs GiB |")
    print("| --- | --- | --- | --- | --- |")
    for name, d, vocab, kind, rows in cases:
        arg = json.dumps({"d": d, "vocab": vocab, "positions": a.positions, "kind": kind, "rows": rows,
                          "repeat": a.repeat})
        p = subprocess.run([sys.executable, __file__, "--child", arg], capture_output=True, text=True, check=True)
        r = {"head": name, "hidden": d, "vocab": vocab, "kind": kind, **json.loads(p.stdout.strip().splitlines()[-1])}
        results["cases"].append(r)
        print(f"| {name} ({d} x {vocab:,}) | {kind} | {r['rows']} | {r['seconds']:.2f} | {r['peak_above_gib']:.2f} |",
              flush=True)
    results["load_after"] = os.getloadavg()[0]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
