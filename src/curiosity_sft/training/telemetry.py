"""What a run reports besides its loss: memory, model FLOPs utilisation, and the metrics sinks.

MFU follows the PaLM appendix B convention: model FLOPs per token are ``6 * N`` (forward and
backward over every non-embedding weight) plus ``12 * L * d * T`` for attention over a context of
``T``, with the output head counted on trained tokens only (``4 * N`` for a frozen LoRA base).
The peak is a table value for known GPUs and, on CPU, the measured matmul rate of the precision
the run trains in (training/precision.py's cached probe), since CPUs have no spec sheet number
worth trusting.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

# Dense bf16 (fp16 on T4/V100) tensor-core peaks per GPU (FLOP/s) from the vendors' data sheets,
# without sparsity. A name matches a key only as whole words, the longest key first: "A10" is not
# "A100", "H100 PCIe" is not the SXM "H100".
GPU_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12, "A100": 312e12,
                 "L40S": 362e12, "L40": 181e12, "A6000": 155e12, "RTX 6000 Ada": 364e12, "RTX 4090": 165e12,
                 "RTX 3090": 71e12, "RTX 3090 Ti": 80e12, "A10": 125e12, "L4": 121e12, "T4": 65e12,
                 "V100": 125e12}


def process_rss_bytes() -> int:
    """Resident set size of this process, from /proc (no psutil needed on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil

    return int(psutil.Process().memory_info().rss)


def memory_metrics(device: torch.device) -> dict[str, float]:
    """GiB: allocated/reserved (peak since the last call) on CUDA, process RSS elsewhere."""
    gib = float(1 << 30)
    if device.type == "cuda":
        rec = {"memory_allocated_gib": torch.cuda.max_memory_allocated(device) / gib,
               "memory_reserved_gib": torch.cuda.max_memory_reserved(device) / gib}
        torch.cuda.reset_peak_memory_stats(device)
        return rec
    return {"memory_rss_gib": process_rss_bytes() / gib}


def model_flops(config: Any, context: float, n_real: int, n_trained: int, frozen_base: bool = False) -> float:
    """Model FLOPs (forward + backward) for a step over ``n_real`` tokens of which ``n_trained`` carry a label.

    The decoder counts on every token; the vocabulary head only on trained ones, because that is
    all the model needs (see loss.py) and counting FLOPs never done would flatter the MFU. A
    frozen base (LoRA, QLoRA) costs 4 FLOPs per weight and token instead of 6: the backward pass
    computes gradients of activations but not of frozen weights (the adapters are ~1% and not
    counted).
    """
    d, L = config.hidden_size, config.num_hidden_layers
    heads, kv = config.num_attention_heads, getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    per_layer = d * heads * head_dim * 2 + d * kv * head_dim * 2 + 3 * d * config.intermediate_size
    w = 4.0 if frozen_base else 6.0
    body = w * L * per_layer + 12.0 * L * heads * head_dim * context
    return body * n_real + w * d * config.vocab_size * n_trained


def measure_matmul_flops(n: int = 1024, seconds: float = 0.3, dtype: torch.dtype = torch.float32) -> float:
    """Sustained square-matmul rate on CPU with the current thread count (FLOP/s).

    Its own generator: drawing from the global one after a resume restored it would shift every
    later dropout mask, and the resumed run would no longer be the interrupted one.
    """
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, dtype=dtype, generator=g), torch.randn(n, n, dtype=dtype, generator=g)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2.0 * n**3 * reps / (time.perf_counter() - t0)


def gpu_peak_flops(name: str) -> float | None:
    """The table's peak for a CUDA device name (e.g. "NVIDIA A100-SXM4-80GB"), or None if it is not there."""
    words = re.sub(r"[^A-Za-z0-9]+", " ", name).upper().split()
    best: tuple[int, float] | None = None
    for key, value in GPU_PEAK_BF16.items():
        k = key.upper().split()
        if any(words[i:i + len(k)] == k for i in range(len(words))) and (best is None or len(key) > best[0]):
            best = (len(key), value)
    return best[1] if best else None


def peak_flops(device: torch.device, peak_tflops: float | None = None,
               cpu_rate: float | None = None) -> float | None:
    """One device's peak: ``peak_tflops`` from the config if set, the table on GPUs, on CPU
    ``cpu_rate`` (the precision probe's measured rate of the precision trained in) or else a fresh
    fp32 matmul measurement. None (with a warning) for a GPU the table does not know: MFU is then
    left out of the metrics rather than reported as 0."""
    if peak_tflops:
        return peak_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = gpu_peak_flops(name)
        if peak is None:
            log.warning("MFU not reported: %r is not in the GPU peak table (set peak_tflops to its dense bf16 "
                        "TFLOP/s)", name)
        return peak
    return cpu_rate if cpu_rate is not None else measure_matmul_flops()


def mfu(flops: float, seconds: float, peak: float | None, world_size: int) -> float | None:
    """Model FLOPs utilisation of the whole job: the FLOPs of every process over the time taken,
    against the peak of all its devices (one device's peak times the process count)."""
    if peak is None or peak <= 0 or seconds <= 0:
        return None
    return flops / seconds / (peak * world_size)


class MetricsSink:
    """metrics.jsonl (one consistent history, truncated on resume) and TensorBoard."""

    def __init__(self, out: Path, resume_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.path = out / "metrics.jsonl"
        if self.path.is_file():  # a fresh run (resume_step 0) starts an empty history
            keep = [ln for ln in self.path.read_text().splitlines()
                    if ln.strip() and json.loads(ln)["step"] <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in keep))
        self.writer = SummaryWriter(str(out / "runs"), purge_step=resume_step + 1 if resume_step else None)

    def log(self, rec: dict[str, Any]) -> None:
        """TensorBoard tags are ``train/<key>``, except ``eval*`` and the curriculum's own
        ``curriculum/...`` keys, which keep their names (docs/CURRICULUM.md names them)."""
        step = rec["step"]
        for k, v in rec.items():
            if k != "step" and isinstance(v, (int, float)):
                self.writer.add_scalar(k if k.startswith(("eval", "curriculum/")) else f"train/{k}", v, step)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()

    def close(self) -> None:
        self.writer.close()


class MetricsWindow:
    """Tokens and FLOPs since the last logged step, timed without validation, checkpoints and
    the curiosity sampler's probes."""

    def __init__(self) -> None:
        self.start, self.tokens, self.flops, self.logged = time.perf_counter(), 0, 0.0, False

    def add(self, tokens: int, flops: float) -> None:
        self.tokens += tokens
        self.flops += flops

    def metrics(self, peak: float | None, world_size: int) -> dict[str, float]:
        dt = time.perf_counter() - self.start
        rec = {"tokens_per_second": self.tokens / dt if dt > 0 else 0.0, "window_seconds": dt}
        u = mfu(self.flops, dt, peak, world_size)
        if u is not None:
            rec["mfu"] = u
        self.tokens, self.flops, self.logged = 0, 0.0, True
        return rec

    def leave_out(self, seconds: float) -> None:
        """Time spent on other work than training steps within the window (the curiosity probes)."""
        self.start += seconds

    def restart_if_logged(self) -> None:
        if self.logged:
            self.start, self.logged = time.perf_counter(), False
