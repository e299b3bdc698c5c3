"""Which kernels the model runs: attention implementation, Liger's Triton kernels, torch.compile.

Checked before anything is loaded, so a combination this machine cannot run stops in a second
with one line saying why and what to set instead, rather than after the weights are in memory.

- ``attn_implementation``: passed to transformers. ``sdpa`` and ``eager`` run everywhere;
  ``flash_attention_2`` needs CUDA and the ``flash-attn`` package. Packed rows need no attention
  mask with any of them: transformers reads restarting ``position_ids`` as packed sequences,
  building a block-diagonal mask for sdpa/eager and calling flash-attn's varlen kernel with
  cumulative sequence lengths for flash_attention_2. ``sdpa_varlen`` is this package's varlen
  attention for devices without flash-attn: each packed example (a run of restarting position
  ids) goes through sdpa on its own with ``is_causal``, so the kernel skips the masked-out
  blocks that a block-diagonal mask over the whole row makes it compute. ``auto`` (the default)
  is ``sdpa_varlen`` on CPU, where it measured faster (docs/PERFORMANCE.md), and ``sdpa`` elsewhere.
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
from typing import Any

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


VARLEN = "sdpa_varlen"


def segments(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) of each run of positions restarting at 0 in one row: its packed examples and padding."""
    starts = (position_ids == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return list(zip(starts, [*starts[1:], int(position_ids.shape[0])], strict=True))


def varlen_sdpa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, position_ids: torch.Tensor | None = None,
                          **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' sdpa attention run per packed example, causal within each (training forwards only).

    Registered as an attention implementation, so transformers builds no mask for it; with a KV
    cache (generation) the queries are not the keys' positions, and it refuses rather than guess.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    kwargs.pop("is_causal", None)
    if position_ids is None or query.shape[2] != key.shape[2] or attention_mask is not None:
        raise RuntimeError("sdpa_varlen is for training forwards (position ids, no cache, no mask); "
                           "load the model with attn_implementation='sdpa' to generate")
    rows = []
    for b in range(query.shape[0]):
        parts = [sdpa_attention_forward(module, query[b:b + 1, :, s:e], key[b:b + 1, :, s:e], value[b:b + 1, :, s:e],
                                        None, is_causal=True, **kwargs)[0]
                 for s, e in segments(position_ids[b] if position_ids.shape[0] > 1 else position_ids[0])]
        rows.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
    return torch.cat(rows, dim=0), None


def register_varlen_attention() -> None:
    """Make ``attn_implementation='sdpa_varlen'`` known to transformers (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(VARLEN, varlen_sdpa_attention)


def resolve_attention(cfg: SFTConfig, device: torch.device) -> str:
    """The attention implementation a run uses: ``auto`` is sdpa_varlen on CPU, sdpa elsewhere."""
    impl = cfg.attn_implementation
    if impl == "auto":
        impl = VARLEN if device.type == "cpu" else "sdpa"
    if impl == VARLEN:
        register_varlen_attention()
    return impl


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
