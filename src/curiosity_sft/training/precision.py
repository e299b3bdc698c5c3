"""Device and numeric precision, chosen from the hardware (measured on CPU) and overridable.

CUDA with bf16 support trains in bf16 autocast (no loss scaling needed); older GPUs in fp16 with a
``GradScaler``. On a CPU the choice is measured, because CPUs of the same kind differ by two orders
of magnitude: one of this project's machines ran bf16 matmuls at under 1 GFLOP/s against 114 in
fp32 (no bf16 units), another at 882 against 188 (``avx512_bf16`` with AMX), and one with
``avx512_bf16`` but no AMX at about half its fp32 rate. ``precision: auto`` therefore times a
square fp32 and bf16 matmul once per machine (about a second, cached in ``$CURIOSITY_SFT_CACHE``
keyed by CPU model, flags, thread count and torch version) and trains with bf16 autocast over fp32
master weights only when bf16 is clearly faster (``BF16_MARGIN``). ``precision: bf16`` (or the
seed's ``bf16: true``) is honoured on a CPU either way, with a warning when it measured slower.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from curiosity_sft.config import SFTConfig

log = logging.getLogger(__name__)

# bf16 autocast casts every matmul input and keeps the fp32 residual stream, and its elementwise
# work is no faster, so a matmul rate only slightly above fp32's does not make training faster.
BF16_MARGIN = 1.3
PROBE_SIZE, PROBE_SECONDS = 1024, 0.5
CACHE_FILE = "matmul_rates.json"


@dataclass(frozen=True)
class MatmulRates:
    """Sustained square-matmul rates of this CPU at the current thread count (GFLOP/s)."""

    fp32_gflops: float
    bf16_gflops: float
    threads: int
    source: str = "measured"  # or the cache file it was read from

    def rate_of(self, dtype: torch.dtype | None) -> float:
        """FLOP/s of the precision a run trains in (``None``: fp32)."""
        return (self.bf16_gflops if dtype == torch.bfloat16 else self.fp32_gflops) * 1e9


@dataclass(frozen=True)
class PrecisionChoice:
    """What a run trains in, why, and the rates the choice rests on (CPU only)."""

    dtype: torch.dtype | None  # the autocast dtype; None trains in plain fp32
    reason: str
    rates: MatmulRates | None = None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def describe(self) -> str:
        return f"{self.name} ({self.reason})"

    def record(self) -> dict[str, Any]:
        """The manifest's entry: the choice and the measured rates behind it."""
        rec: dict[str, Any] = {"precision": self.name, "reason": self.reason}
        if self.rates is not None:
            rec["matmul_gflops"] = {"fp32": round(self.rates.fp32_gflops, 1), "bf16": round(self.rates.bf16_gflops, 1),
                                    "threads": self.rates.threads, "source": self.rates.source}
        return rec


def pick_device(cfg: SFTConfig) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def requested_precision(cfg: SFTConfig) -> str:
    """``precision`` wins; the seed's ``bf16`` flag is read as ``precision: bf16``.

    The seed's ``fp16: true`` asks for mixed precision and is read as ``auto`` (bf16 where the GPU
    has it, fp16 with loss scaling elsewhere): forcing fp16 on a bf16 GPU overflows models trained
    in bf16, such as the R1 distills. ``precision: fp16`` still forces it.
    """
    if cfg.precision != "auto":
        return cfg.precision
    if cfg.bf16:
        return "bf16"
    return "auto"


def machine_key() -> str:
    """What the matmul rates depend on: CPU model and flags, thread count, torch build."""
    model, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = json.dumps([model, sorted(flags.split()), torch.get_num_threads(), torch.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measure_rates() -> MatmulRates:
    """Time fp32 and bf16 matmuls (about a second). Draws from its own generator, never the global one.

    Each rate is the best of two timings, the one least disturbed by other work on the machine.
    """
    from curiosity_sft.training.telemetry import measure_matmul_flops

    def best(n: int, seconds: float, dtype: torch.dtype) -> float:
        return max(measure_matmul_flops(n, seconds / 2, dtype) for _ in range(2))

    fp32 = best(PROBE_SIZE, PROBE_SECONDS, torch.float32)
    # Without bf16 units one 1024^3 bf16 matmul takes seconds; a small one shows that quickly.
    small = best(256, 0.1, torch.bfloat16)
    bf16 = best(PROBE_SIZE, PROBE_SECONDS, torch.bfloat16) if small > fp32 / 20 else small
    return MatmulRates(fp32 / 1e9, bf16 / 1e9, torch.get_num_threads())


def cpu_rates(cache_dir: Path | None = None, measure: Callable[[], MatmulRates] = measure_rates) -> MatmulRates:
    """This machine's rates, measured once and then read from the cache."""
    from curiosity_sft.io import atomic_write_json
    from curiosity_sft.models import cache_dir as default_cache

    path = (cache_dir or default_cache()) / CACHE_FILE
    key = machine_key()
    try:
        known = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        known = {}  # a damaged cache is re-measured, not trusted
    if not isinstance(known, dict):
        known = {}
    if key in known:
        r = known[key]
        return MatmulRates(float(r["fp32_gflops"]), float(r["bf16_gflops"]), int(r["threads"]), source=str(path))
    load = os.getloadavg()[0]
    rates = measure()
    if load > (os.cpu_count() or 1):  # other work was running: good enough for this run, not for every later one
        log.warning("matmul rates measured on a busy machine (load %.1f): used for this run, not cached", load)
        return rates
    known[key] = {**asdict(rates), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "load": round(load, 2)}
    del known[key]["source"]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, known)
    except OSError as e:  # a read-only cache costs a second per run, not the run
        log.warning("could not cache matmul rates in %s: %s", path, e)
    return rates


def choose_precision(cfg: SFTConfig, device: torch.device, bf16_supported: bool | None = None,
                     rates: Callable[[], MatmulRates] | None = None) -> PrecisionChoice:
    """The precision to train in; on CPU from measured matmul rates (``rates`` injects them in tests)."""
    want = requested_precision(cfg)
    if device.type == "cuda":
        if want == "fp32":
            return PrecisionChoice(None, "precision: fp32")
        if bf16_supported is None:
            bf16_supported = torch.cuda.is_bf16_supported()
        if cfg.fp16 and want == "auto":
            log.info("fp16: true read as mixed precision: %s (set precision: fp16 to force fp16)",
                     "bf16, which this GPU supports" if bf16_supported else "fp16 with loss scaling (no bf16 on this GPU)")
        if want == "bf16" or (want == "auto" and bf16_supported):
            return PrecisionChoice(torch.bfloat16, "GPU with bf16" if want == "auto" else "precision: bf16")
        return PrecisionChoice(torch.float16, "GPU without bf16" if want == "auto" else "precision: fp16")
    if device.type != "cpu":  # mps and others: no measured path, keep the safe default
        if want in ("fp16", "bf16"):
            log.warning("%s requested but running on %s: training in fp32", want, device.type)
        return PrecisionChoice(None, f"{device.type}: fp32")
    r = (rates or cpu_rates)()
    measured = f"bf16 {r.bf16_gflops:.0f} vs fp32 {r.fp32_gflops:.0f} GFLOP/s matmul"
    if want == "fp16":
        log.warning("fp16 requested on CPU: training in fp32 (fp16 autocast needs loss scaling and CPUs have no "
                    "fp16 matmul advantage; use precision: bf16 or auto)")
        return PrecisionChoice(None, f"fp16 is not used on CPU; {measured}", r)
    if want == "fp32":
        return PrecisionChoice(None, f"precision: fp32; {measured}", r)
    faster = r.bf16_gflops >= BF16_MARGIN * r.fp32_gflops
    if want == "bf16":
        if not faster:
            log.warning("precision bf16 on a CPU where bf16 is not clearly faster (%s): training in bf16 as asked",
                        measured)
        return PrecisionChoice(torch.bfloat16, f"precision: bf16; {measured}", r)
    if faster:
        return PrecisionChoice(torch.bfloat16, f"auto: bf16 is at least {BF16_MARGIN}x fp32 here, {measured}", r)
    return PrecisionChoice(None, f"auto: bf16 is not {BF16_MARGIN}x fp32 here, {measured}", r)


def autocast_dtype(cfg: SFTConfig, device: torch.device, bf16_supported: bool | None = None,
                   rates: Callable[[], MatmulRates] | None = None) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for plain fp32."""
    return choose_precision(cfg, device, bf16_supported, rates).dtype


def weight_dtype(cfg: SFTConfig, amp: torch.dtype | None) -> torch.dtype:
    """Frozen LoRA base weights can live in bf16 (half the memory); trained ones stay fp32.

    Not in fp16: a base trained in bf16 (the R1 distills) has weights and activations beyond
    fp16's range, and a frozen fp16 base would carry fp16 through every norm and residual add;
    with fp32 storage only autocast's matmuls run in fp16. A full fine-tune keeps fp32 master
    weights so small updates are not rounded away.
    """
    if cfg.peft_enable and amp == torch.bfloat16:
        return amp
    return torch.float32
