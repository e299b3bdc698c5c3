"""Which kernels the model runs: attention implementation, Liger's Triton kernels, torch.compile.

Checked before anything is loaded, so a combination this machine cannot run stops in a second
with one line saying why and what to set instead, rather than after the weights are in memory.

- ``attn_implementation``: passed to transformers. ``sdpa`` (the default) and ``eager`` run
  everywhere; ``flash_attention_2`` needs CUDA and the ``flash-attn`` package. Packed rows need
  no attention mask with any of them: transformers reads restarting ``position_ids`` as packed
  sequences, building a block-diagonal mask for sdpa/eager and calling flash-attn's varlen
  kernel with cumulative sequence lengths for flash_attention_2.
- ``use_liger``: Liger's RMSNorm, RoPE and SwiGLU kernels (Triton: CUDA only), applied to the
  model instance as transformers' Trainer does. Liger's fused linear cross-entropy is not used:
  training/loss.py already computes the head chunk by chunk over labelled positions only.
- ``compile``: ``torch.compile`` on each decoder layer in place (parameter names, and so
  checkpoints, are unchanged). Off by default: docs/PERFORMANCE.md has the measurement.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil

import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.errors import UserError

log = logging.getLogger(__name__)


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def check_kernel_options(cfg: SFTConfig, device: torch.device) -> None:
    """Refuse, in one line, kernel options this machine cannot run."""
    cuda = device.type == "cuda"
    if cfg.attn_implementation == "flash_attention_2":
        if not cuda:
            raise UserError(f"flash_attention_2 needs a CUDA GPU; this run is on {device.type}",
                            where="attn_implementation", fix="set attn_implementation: sdpa")
        if not _installed("flash_attn"):
            raise UserError("flash_attention_2 needs the flash-attn package",
                            where="attn_implementation", fix="pip install flash-attn, or set attn_implementation: sdpa")
    if cfg.use_liger:
        if not cuda:
            raise UserError(f"Liger's kernels need a CUDA GPU (they are Triton kernels); this run is on {device.type}",
                            where="use_liger", fix="set use_liger: false")
        if not (_installed("liger_kernel") and _installed("triton")):
            raise UserError("Liger's kernels need the liger-kernel package (and Triton)", where="use_liger",
                            fix="pip install liger-kernel, or set use_liger: false")
    if cfg.compile and device.type == "cpu" and not (shutil.which("g++") or shutil.which("c++")):
        raise UserError("torch.compile on CPU needs a C++ compiler (it generates C++)", where="compile",
                        fix="install g++ or set compile: false")


def apply_liger(model: torch.nn.Module) -> None:
    """Swap the model's norms, RoPE and MLPs for Liger's kernels, keeping our own loss head."""
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, cross_entropy=False, fused_linear_cross_entropy=False)
    log.info("Liger kernels applied (RMSNorm, RoPE, SwiGLU)")


def compile_layers(decoder: torch.nn.Module) -> int:
    """``torch.compile`` every decoder layer in place; returns how many were compiled.

    Per layer rather than the whole model: identical layers share one compiled graph, the loss
    and its chunked head stay eager, and ``dynamic=True`` keeps packed rows of varying length
    from recompiling at every new shape.
    """
    layers = list(getattr(decoder, "layers", []))
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)
