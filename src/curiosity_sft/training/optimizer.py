"""The optimizer: torch's AdamW, fused wherever torch has a fused kernel for the parameters' device,
with weight decay only where it regularises: matrices of the decoder, never norms, biases or
embeddings.

The fused kernel updates every parameter in one pass over its memory; the foreach version makes
several passes with intermediate tensors. On this project's 2-core CPU a full SmolLM2-135M step
took 0.29 s fused against 2.9 s foreach (bench/bench_cpu_adam.py --torch-only), a tenth of a
training step, and fused AdamW is what ZeRO-Offload already used. Devices without a fused kernel
(and non-float parameters) keep foreach.

Decay pulls a weight towards zero. For a projection matrix that is the regulariser AdamW's
authors meant; for a norm's gain (whose neutral value is 1), a bias or an embedding row (updated
only when its token appears, so decayed far more often than it is trained) it only does harm.
This follows nanoGPT/LitGPT (two groups by tensor rank, embeddings excluded); transformers'
Trainer excludes norms and biases but decays embeddings.

The optimizer state of a checkpoint lists parameters in the optimizer's order (decay group, then
no-decay group); every launcher's checkpoint uses that same order (distributed.py, zero.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def fused_adamw_supported(params: Sequence[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW kernel covers every parameter (device and dtype)."""
    # torch's own list of devices with fused optimizer kernels; AdamW only checks it at the first step
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    devices = set(_get_fused_kernels_supported_devices())
    return bool(params) and all(p.device.type in devices and torch.is_floating_point(p) for p in params)


def build_adamw(params: Sequence[torch.nn.Parameter] | Sequence[dict[str, Any]], lr: float,
                weight_decay: float) -> torch.optim.AdamW:
    """AdamW over ``params`` (tensors, or groups that may set their own ``weight_decay``), fused
    when supported, else foreach."""
    groups = list(params)
    flat = [p for g in groups for p in g["params"]] if groups and isinstance(groups[0], dict) else groups
    fused = fused_adamw_supported(flat)  # type: ignore[arg-type]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=fused, foreach=None if fused else True)


def optimizer_name(optimizer: torch.optim.Optimizer) -> str:
    """``AdamW (fused)`` or ``AdamW (foreach)``: what the log and the manifest record."""
    d = optimizer.defaults
    return f"{type(optimizer).__name__} ({'fused' if d.get('fused') else 'foreach' if d.get('foreach') else 'for-loop'})"


def no_decay_names(model: torch.nn.Module) -> set[str]:
    """Trainable parameters that get no weight decay: vectors (norm gains, biases) and embeddings."""
    embedding_ids = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters(False)}
    return {n for n, p in model.named_parameters() if p.requires_grad and (p.dim() < 2 or id(p) in embedding_ids)}


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The optimizer's groups: decayed matrices first, then the rest; an empty group is left out."""
    skip = no_decay_names(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if n not in skip], "weight_decay": weight_decay},
              {"params": [p for n, p in named if n in skip], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """The engine's AdamW (``build_adamw``, fused where supported) over the trainable parameters as
    they are now (after any sharding), in the two decay groups."""
    return build_adamw(parameter_groups(model, weight_decay), learning_rate, weight_decay)


def optimizer_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the optimizer's order: the meaning of the index keys of its state."""
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [by_id[id(p)] for g in optimizer.param_groups for p in g["params"]]


def regroup(state: dict[str, Any], saved_order: list[str], optimizer: torch.optim.Optimizer,
            model: torch.nn.Module) -> dict[str, Any]:
    """An optimizer state saved with one group (checkpoints before the decay groups, indexed in the
    model's parameter order) re-indexed for this optimizer's groups, keeping every moment."""
    names = optimizer_names(model, optimizer)
    where = {n: i for i, n in enumerate(saved_order)}
    old = state["param_groups"][0]
    moved = {new: state["state"][where[n]] for new, n in enumerate(names) if where[n] in state["state"]}
    groups, start = [], 0
    for g in optimizer.param_groups:
        count = len(g["params"])
        groups.append({**{k: v for k, v in old.items() if k != "params"}, "weight_decay": g["weight_decay"],
                       "params": list(range(start, start + count))})
        start += count
    return {"state": moved, "param_groups": groups}
