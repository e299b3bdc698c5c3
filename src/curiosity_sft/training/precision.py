"""Device and numeric precision, chosen from the hardware and overridable.

CUDA with bf16 support trains in bf16 autocast (no loss scaling needed); older GPUs in fp16 with a
``GradScaler``; CPUs in fp32, because without bf16 matmul units a bf16 matmul runs ~100x slower
there than fp32 (measured: < 1 GFLOP/s against ~114 GFLOP/s on this project's CI CPU).
"""

from __future__ import annotations

import logging

import torch

from curiosity_sft.config import SFTConfig

log = logging.getLogger(__name__)


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


def autocast_dtype(cfg: SFTConfig, device: torch.device, bf16_supported: bool | None = None) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for plain fp32."""
    want = requested_precision(cfg)
    if device.type != "cuda":
        if want in ("fp16", "bf16"):
            log.warning("%s requested but running on %s: training in fp32", want, device.type)
        return None
    if want == "fp32":
        return None
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    if cfg.fp16 and want == "auto":
        log.info("fp16: true read as mixed precision: %s (set precision: fp16 to force fp16)",
                 "bf16, which this GPU supports" if bf16_supported else "fp16 with loss scaling (no bf16 on this GPU)")
    if want == "bf16" or (want == "auto" and bf16_supported):
        return torch.bfloat16
    return torch.float16


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
