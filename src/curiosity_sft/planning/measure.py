"""Measure a training step's peak memory on CPU and set it against the planner's estimate.

Each measurement runs in a fresh subprocess: it builds the model, reads its resident set size,
resets the kernel's peak counter (``/proc/self/clear_refs``), runs two optimizer steps on a packed
batch (the second step is the peak: optimizer states exist while activations and gradients are
alive), and reports ``VmHWM`` minus the starting RSS. tracemalloc cannot see torch's allocations;
the kernel's counters can. The estimate compared is everything but the weights, which the
starting RSS already holds (they are read once first, so lazily mmapped weights are resident).

Usage: python -m curiosity_sft.planning.measure [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from curiosity_sft.planning.architectures import architecture_for
from curiosity_sft.planning.memory import GIB, Setting, estimate

MODEL = "smollm2-135m-instruct"
# glibc raises its mmap threshold each time a large block is freed, after which activation-sized
# blocks come from the heap and fragment it: with gradient checkpointing's alloc/free churn the
# RSS peak of the 135M LoRA run measured 2.09 GiB with the default and 0.71 GiB with a fixed
# threshold. The planner estimates what torch holds, so measurements fix the threshold.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


@dataclass(frozen=True)
class Probe:
    hidden_dim: int | None
    num_layers: int | None
    method: str
    micro_batch: int
    seq_len: int
    checkpointing: bool = False


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _child(p: Probe) -> dict[str, float]:
    import torch

    from curiosity_sft.models import apply_lora, load_model
    from curiosity_sft.training.batching import Batch
    from curiosity_sft.training.loss import sum_token_loss
    from curiosity_sft.training.optimizer import build_adamw

    model = load_model(MODEL, hidden_dim=p.hidden_dim, num_layers=p.num_layers)
    if p.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if p.method == "lora":
            model.enable_input_require_grads()
    if p.method == "lora":
        model = apply_lora(model, 16, 32, 0.05, "all-linear")
    model.train()
    params = [q for q in model.parameters() if q.requires_grad]
    opt = build_adamw(params, 1e-5, 0.0)  # the engine's optimizer (fused)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (p.micro_batch, p.seq_len), generator=g)
    half = p.seq_len // 2  # two examples per row, as packing lays them out
    pos = torch.cat([torch.arange(half), torch.arange(p.seq_len - half)]).repeat(p.micro_batch, 1)
    batch = Batch(ids, ids.clone(), pos, (p.seq_len,) * p.micro_batch)
    with torch.no_grad():  # page in weights that a lazily mmapped checkpoint has not loaded yet
        for q in model.parameters():
            q.sum()
    rss0 = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    for _ in range(2):
        s, n = sum_token_loss(model, batch)
        (s / n).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return {"measured_gib": (_status_kib("VmHWM") - rss0) / (1 << 20)}


def measure(p: Probe) -> dict[str, float]:
    """Measured peak (subprocess) and estimated peak above the loaded weights, in GiB."""
    out = subprocess.run([sys.executable, "-m", "curiosity_sft.planning.measure", "--child", json.dumps(asdict(p))],
                         capture_output=True, text=True, check=True, env={**os.environ, **MALLOC_ENV})
    res = json.loads(out.stdout.strip().splitlines()[-1])
    arch = architecture_for(MODEL, p.hidden_dim, p.num_layers)
    e = estimate(arch, Setting(p.method, p.micro_batch, 1, p.checkpointing), p.seq_len, cuda=False)  # type: ignore[arg-type]
    res["estimated_gib"] = (e.total - e.weights) / GIB
    res["ratio"] = res["estimated_gib"] / res["measured_gib"]
    return res


PROBES = [Probe(256, 4, "full", 4, 256), Probe(256, 4, "lora", 4, 256), Probe(256, 4, "full", 4, 256, True),
          Probe(None, None, "full", 2, 256), Probe(None, None, "lora", 4, 256),
          Probe(None, None, "lora", 4, 256, True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="small fresh models only")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(Probe(**json.loads(a.child)))))
        return
    print("| model | method | micro-batch x tokens | checkpointing | measured GiB | estimated GiB | est/meas |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for p in PROBES:
        if a.quick and p.hidden_dim is None:
            continue
        r = measure(p)
        name = MODEL if p.hidden_dim is None else f"{MODEL} fresh {p.hidden_dim}x{p.num_layers}"
        print(f"| {name} | {p.method} | {p.micro_batch} x {p.seq_len} | {'on' if p.checkpointing else 'off'} | "
              f"{r['measured_gib']:.3f} | {r['estimated_gib']:.3f} | {r['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
