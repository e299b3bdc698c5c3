"""The one definition of the SFT loss, shared by training, validation and perplexity.

The loss is a *sum* over trained tokens; callers divide by the number of trained tokens in the
whole optimizer step (all accumulation micro-batches together), so splitting a global batch into
more, smaller micro-batches does not change the loss or the gradient.

The vocabulary head is applied only at positions that carry a label (for SFT on chat data most
positions are prompt or padding), and in chunks of positions, so the ``positions x vocabulary``
logits never exist all at once: for Qwen's 152k vocabulary one 2,048-token row's fp32 logits are
1.2 GB, and plain cross-entropy keeps about three such tensors (logits, log-softmax, their
gradient). TRL 1.16 also projects only labelled positions, but only where Triton runs (CUDA/XPU);
on a CPU its fused head scores every position (``trl/trainer/utils.py``, ``compact =
_use_triton(...)``) and recomputes each tile in backward.

Why a hand-written autograd function: neither torch nor transformers has a chunked
linear-plus-cross-entropy for CPU (Liger's and TRL's fused kernels are Triton), and a
checkpointed chunk loop recomputes every chunk's logits in backward (a fourth head matmul).
``_ChunkedHeadLoss`` computes each chunk's gradient while its logits are at hand, in the forward
pass, the way Liger's fused linear cross-entropy does, so the head costs the same three matmuls
as the plain one and keeps only ``positions x hidden`` and ``vocabulary x hidden`` gradients.
Heads that are not a plain ``nn.Linear`` (LoRA on the head) go through the checkpointed loop
instead. Under DeepSpeed ZeRO-3 the head stays whole and unchunked: its partitioned weight is
gathered by a collective in the head's forward hook, so every rank must call it equally often.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from curiosity_sft.training.batching import IGNORE, Batch

# fp32 logits per chunk are at most this many bytes (341 positions of SmolLM2's 49k vocabulary,
# 110 of Qwen's 152k) when the head is frozen; a trained head takes larger chunks (chunk_rows).
# Small enough that a chunk is never the peak (bench/bench_head.py measures speed and peak).
CHUNK_BYTES = 64 << 20


def backbone_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The decoder stack and the output projection, through a PEFT wrapper if there is one.

    LoRA layers are injected into the decoder's modules, so calling the decoder directly still
    applies them.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def chunk_rows(vocab_size: int, hidden_size: int | None = None, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Positions per chunk: one chunk's fp32 logits take at most ``chunk_bytes``.

    When the head's weight is trained (``hidden_size`` given), every chunk reads and writes the
    whole ``vocabulary x hidden`` weight gradient once, so chunks are at least ``hidden_size / 2``
    positions: below that, that traffic outweighs the chunk's own logits, and the logits tile is
    then at most half the weight gradient, which exists anyway.
    """
    rows = max(1, chunk_bytes // (4 * vocab_size))
    return max(rows, hidden_size // 2) if hidden_size else rows


def _compute_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The dtype the head's matmuls run in: autocast's when it is on (as ``head(h)`` would), else the input's."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return dtype


class _ChunkedHeadLoss(torch.autograd.Function):
    """Sum of cross-entropy of ``hidden @ weight.T (+ bias)`` against ``targets``, chunk by chunk.

    The gradients with respect to ``hidden``, ``weight`` and ``bias`` are computed in forward,
    chunk by chunk, and only scaled by the incoming gradient in backward (the loss is a scalar),
    so no logits are kept. Softmax and log-sum-exp run in fp32; the matmuls in the compute dtype,
    with gradients accumulated over chunks in fp32. The saved gradients are scaled in place, so
    the graph cannot be run backward twice (``retain_graph`` is not supported).
    """

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                targets: torch.Tensor, rows: int, dtype: torch.dtype, grads: bool) -> torch.Tensor:
        # Inside forward grad mode is always off and needs_input_grad ignores an outer no_grad,
        # so the caller says whether a backward can follow (validation must not pay for gradients).
        need_h, need_w = grads and ctx.needs_input_grad[0], grads and ctx.needs_input_grad[1]
        need_b = grads and bias is not None and ctx.needs_input_grad[2]
        w = weight.to(dtype)
        b = bias.to(dtype) if bias is not None else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if need_h else None
        grad_w: torch.Tensor | None = None
        grad_b: torch.Tensor | None = None
        for s in range(0, hidden.shape[0], rows):
            h = hidden[s:s + rows].to(dtype)
            t = targets[s:s + rows]
            logits = (F.linear(h, w, b)).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if not (need_h or need_w or need_b):
                continue
            # d(lse - z_t)/dz = softmax(z) - onehot(t), formed in place over this chunk's logits
            # (as exp(z - lse), the plain head's rounding: in-place max/exp/divide saved two chunk
            # temporaries but moved a DeepSpeed 2-process weight past its test tolerance)
            g = logits.sub_(lse[:, None]).exp_()
            g[torch.arange(len(t), device=g.device), t] -= 1.0
            if need_b:
                grad_b = g.sum(0) if grad_b is None else grad_b.add_(g.sum(0))
            g = g.to(dtype)
            if grad_h is not None:
                grad_h[s:s + rows] = g @ w
            if need_w:
                # accumulated in fp32 in place (addmm_ where the dtypes allow): no weight-sized temporaries
                if grad_w is None:
                    grad_w = (g.t() @ h).float()
                elif dtype == torch.float32:
                    grad_w.addmm_(g.t(), h)
                else:
                    grad_w += g.t() @ h
        if need_w and grad_w is None:  # no labelled position: a zero gradient, still delivered
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        if need_b and grad_b is None:
            grad_b = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device)
        ctx.save_for_backward(*(x for x in (grad_h, grad_w, grad_b) if x is not None))
        ctx.has = (grad_h is not None, grad_w is not None, grad_b is not None)
        ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        if getattr(ctx, "used", False):
            raise RuntimeError("the chunked head's gradients were already used: backward twice is not supported")
        ctx.used = True
        saved = iter(ctx.saved_tensors)
        # scaled in place: a second weight-sized gradient would double the head's memory
        grads = [next(saved).mul_(grad_out).to(dt) if has else None for has, dt in zip(ctx.has, ctx.dtypes, strict=True)]
        return grads[0], grads[1], grads[2], None, None, None, None


def _chunk_cross_entropy(head: torch.nn.Module, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(h).float(), t, reduction="sum")


def head_loss(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """Sum of next-token cross-entropy of ``head(hidden)`` against ``targets``, never holding all logits.

    ``hidden`` is ``[positions, hidden]`` (labelled positions only), ``targets`` ``[positions]``.
    ``rows`` is the chunk size in positions (default: ``chunk_rows`` of the head's vocabulary).
    """
    weight = getattr(head, "weight", None)
    if weight is None:
        raise TypeError(f"output head {type(head).__name__} has no weight")
    if hasattr(weight, "ds_id"):
        # DeepSpeed ZeRO-3 gathers the weight in the head's forward hook, a collective: every rank must
        # call the head equally often, and a rank's chunk count follows its own labelled positions
        return F.cross_entropy(head(hidden).float(), targets, reduction="sum")
    trains_weight = torch.is_grad_enabled() and weight.requires_grad
    rows = rows or chunk_rows(weight.shape[0], weight.shape[1] if trains_weight else None)
    if type(head) is torch.nn.Linear:
        dtype = _compute_dtype(hidden.device, hidden.dtype)
        return _ChunkedHeadLoss.apply(hidden, head.weight, head.bias, targets, rows, dtype, torch.is_grad_enabled())
    if not torch.is_grad_enabled():
        return sum((_chunk_cross_entropy(head, hidden[s:s + rows], targets[s:s + rows])
                    for s in range(0, hidden.shape[0], rows)), hidden.new_zeros((), dtype=torch.float32))
    # A wrapped head (LoRA on lm_head): recompute each chunk's logits in backward.
    total = hidden.new_zeros((), dtype=torch.float32)
    for s in range(0, hidden.shape[0], rows):
        total = total + checkpoint(_chunk_cross_entropy, head, hidden[s:s + rows], targets[s:s + rows],
                                   use_reentrant=False)
    return total


def sum_token_loss(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
    """(sum of next-token cross-entropy over trained tokens, number of trained tokens)."""
    decoder, head = backbone_and_head(model)
    hidden = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).last_hidden_state
    targets = batch.labels[:, 1:]
    keep = targets != IGNORE
    loss = head_loss(head, hidden[:, :-1][keep], targets[keep])
    return loss, int(keep.sum())
