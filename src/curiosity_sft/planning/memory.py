"""Peak training memory from the architecture alone, and the fastest setting that fits a GPU.

The estimate follows what this engine does (training/precision.py): on CUDA, bf16 autocast with
fp32 master weights for a full fine-tune, a bf16 (LoRA) or NF4 (QLoRA) frozen base; on CPU, fp32
everywhere (the planner's CPU mode checks its constants; a CPU run may train in bf16 where that
measured faster); fused AdamW on both (training/optimizer.py). Activations are counted tensor by
tensor for one decoder block of the Llama/Qwen shape (norms, RoPE, SDPA, SwiGLU, LoRA dropout
copies); the vocabulary head costs one chunk of logits and the hidden-state gradient of the
trained positions (training/loss.py), not all their logits. The constants were checked against
measured peaks on CPU (``python -m curiosity_sft.planning.measure``); on GPU they are an estimate
with headroom, not a measurement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from curiosity_sft.errors import UserError
from curiosity_sft.planning.architectures import Architecture
from curiosity_sft.training.loss import chunk_rows

Method = Literal["full", "lora", "qlora"]
GIB = float(1 << 30)
CUDA_CONTEXT = int(0.75 * GIB)  # CUDA context + cuBLAS workspaces: real memory torch does not count
HEADROOM = 0.92  # allocator fragmentation: plan to fill at most this share of the card


@dataclass(frozen=True)
class Setting:
    method: Method
    micro_batch: int
    accumulation: int
    checkpointing: bool


@dataclass
class Estimate:
    """Bytes at the peak, by what holds them."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    temporaries: int
    overhead: int
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Weights and optimizer states live throughout; the rest peaks at one of two moments.

        In backward, activations are freed as gradients appear, so the peak is the activations
        plus the first (largest: the head/embedding) gradients; at the optimizer step, all the
        gradients plus the optimizer's temporaries are alive, and no activations.
        """
        backward = self.activations + self.parts.get("first_gradients", 0) + self.parts.get("transients", 0)
        step = self.gradients + self.parts.get("step_temporaries", 0)
        return self.weights + self.optimizer + max(backward, step) + self.parts.get("fixed", 0) + self.overhead

    def as_gib(self) -> dict[str, float]:
        keys = ("weights", "gradients", "optimizer", "activations", "temporaries", "overhead", "total")
        return {k: round(getattr(self, k) / GIB, 2) for k in keys}


def trainable_params(arch: Architecture, method: Method, lora_r: int) -> int:
    return arch.params if method == "full" else arch.lora_params(lora_r)


def block_activation_bytes(arch: Architecture, method: Method, cuda: bool, lora_dropout: bool) -> float:
    """Bytes one decoder block keeps for backward, per token."""
    d, q, kv, i = arch.hidden_size, arch.q_dim, arch.kv_dim, arch.intermediate_size
    if not cuda:  # fp32 throughout; SDPA gets K/V repeated to the query heads
        elems = (4 * d          # two RMSNorms: input and normalised output
                 + 2 * q + 2 * kv  # RoPE: q, k and their rotate_half copies
                 + 4 * q         # SDPA: q, repeated k and v, output
                 + q             # attention output made contiguous for o_proj
                 + 4 * i)        # SwiGLU: gate, silu(gate), up, product
        # torch's CPU flash-attention kernel takes the packed (block-diagonal) mask, so no
        # heads x context score matrices are kept (measured: adding them overshot by ~20%)
        act = 4.0 * elems
    else:  # fp32 residual and norms; bf16 copies made by autocast for each matmul input; flash SDPA
        act = 4.0 * 4 * d + 2.0 * (5 * d + 2 * q + 2 * kv + 2 * q + kv * 2 + q + 4 * i)
    if method != "full" and lora_dropout:  # each LoRA branch keeps its own dropped-out input and mask
        inputs = 5 * d + q + i
        act += inputs * (2.0 + 1.0 if cuda else 4.0 + 4.0)  # the copy + its mask (bool on CUDA, float on CPU)
    return act


def estimate(arch: Architecture, s: Setting, seq_len: int, *, cuda: bool = True, lora_r: int = 16,
             lora_dropout: bool = True, trained_fraction: float = 1.0) -> Estimate:
    """Peak memory of one training step at micro-batch ``s.micro_batch`` rows of ``seq_len`` tokens."""
    p, n_train = arch.params, trainable_params(arch, s.method, lora_r)
    linear = arch.num_hidden_layers * sum(a * b for a, b in arch.linear_shapes())
    if s.method == "full":
        weights = 4 * p
    elif s.method == "lora":
        weights = (2 if cuda else 4) * p + 4 * n_train
    else:  # NF4 with double quantization: ~4.127 bits per linear weight; embeddings, head, norms in bf16
        weights = int(linear * 4.127 / 8) + 2 * (p - linear) + 4 * n_train
    gradients = 4 * n_train
    optimizer = 8 * n_train
    tokens = s.micro_batch * seq_len
    per_block = block_activation_bytes(arch, s.method, cuda, lora_dropout)
    if s.checkpointing:  # each block keeps its input; one block is recomputed at a time
        blocks = tokens * (arch.num_hidden_layers * 4.0 * arch.hidden_size + per_block)
    else:
        blocks = tokens * arch.num_hidden_layers * per_block
    trained = tokens * trained_fraction
    head = head_bytes(arch, trained, s.method == "full", cuda)
    edges = tokens * 4.0 * 3 * arch.hidden_size  # embedding output and final norm
    mask = 0 if cuda else s.micro_batch * seq_len * seq_len  # packed rows: a bool block-diagonal mask
    activations = int(blocks + head + edges + mask)
    step_temporaries = 0  # fused AdamW (training/optimizer.py) updates in place, without foreach's copies
    fixed = 2 * linear if s.method == "full" and cuda else 0  # autocast's cached bf16 copies of fp32 weights
    if s.method == "qlora":
        fixed += 2 * max(a * b for a, b in arch.linear_shapes())  # one layer dequantized at a time
    transients = int(2 * tokens * arch.intermediate_size * (2 if cuda else 4))  # backward's largest transients
    first_gradients = 4 * arch.embedding_params if s.method == "full" else 0  # the head's gradient comes first
    parts = {"blocks": int(blocks), "head": int(head), "step_temporaries": step_temporaries, "fixed": fixed,
             "transients": transients, "first_gradients": first_gradients}
    temporaries = fixed + max(transients + first_gradients, step_temporaries)
    return Estimate(weights, gradients, optimizer, activations, temporaries, CUDA_CONTEXT if cuda else 0, parts)


def head_bytes(arch: Architecture, trained: float, trains_head: bool, cuda: bool) -> float:
    """What the vocabulary head adds at the end of the forward pass (training/loss.py's chunked head).

    One chunk of logits and its temporaries (fp32 logits and torch.logsumexp's two temporaries; on
    CUDA the bf16 matmul output and the bf16 gradient tile fit in the same 12 bytes), plus the
    fp32 gradient of the trained positions' hidden states, which the head computes in forward,
    and on CUDA the head weight's bf16 copy. The head's weight gradient (a full fine-tune) is counted as ``first_gradients``. All the
    trained positions' logits, log-softmax and gradient (12-14 bytes x positions x vocabulary,
    4.4 GiB for one 2048-token Qwen row) are never held at once.
    """
    rows = min(trained, chunk_rows(arch.vocab_size, arch.hidden_size if trains_head else None))
    weight_copy = 2.0 * arch.vocab_size * arch.hidden_size if cuda else 0.0  # the head weight cast to bf16
    # bytes per chunk element: fp32 logits and torch.logsumexp's temporaries; a frozen head on CPU
    # measured 8 (planning/measure.py's LoRA probes), a trained one 12 (its first weight-gradient
    # product is allocated while the chunk is alive)
    per = 12.0 if cuda or trains_head else 8.0
    return rows * arch.vocab_size * per + trained * arch.hidden_size * 4.0 + weight_copy


METHOD_ORDER: tuple[Method, ...] = ("full", "lora", "qlora")


def relative_speed(s: Setting, seq_len: int) -> float:
    """A throughput heuristic: recomputation costs ~1/3 more compute; small micro-batches underfill the GPU.

    Full fine-tunes and LoRA cost about the same per token (LoRA skips weight gradients of the
    base, ~1/3 of the FLOPs, but adds small matmuls); QLoRA pays ~25% for dequantization.
    """
    tokens = s.micro_batch * seq_len
    fill = tokens / (tokens + 2048)
    return fill / (4 / 3 if s.checkpointing else 1.0) / (1.25 if s.method == "qlora" else 1.0)


@dataclass
class Proposal:
    setting: Setting
    estimate: Estimate
    fits: bool
    note: str


def propose(arch: Architecture, method: Method, global_batch: int, seq_len: int, gpu_bytes: int,
            lora_r: int = 16) -> Proposal:
    """The fastest setting for ``method`` that fits; a lighter method only when nothing else does.

    The global batch (micro-batch x accumulation) is kept, so the proposal changes speed and
    memory, never the optimisation.
    """
    budget = gpu_bytes * HEADROOM
    tried: Proposal | None = None
    for m in METHOD_ORDER[METHOD_ORDER.index(method):]:
        options = []
        for ckpt in (False, True):
            mb = global_batch
            while mb >= 1:
                if global_batch % mb == 0:
                    s = Setting(m, mb, global_batch // mb, ckpt)
                    options.append((relative_speed(s, seq_len), s, estimate(arch, s, seq_len, lora_r=lora_r)))
                mb //= 2
        fitting = [o for o in options if o[2].total <= budget]
        if fitting:
            _, s, e = max(fitting, key=lambda o: o[0])
            note = "" if m == method else f"{method} does not fit even at micro-batch 1 with checkpointing"
            return Proposal(s, e, True, note)
        smallest = min(options, key=lambda o: o[2].total)
        tried = tried or Proposal(smallest[1], smallest[2], False, f"{method} does not fit")
    assert tried is not None
    return Proposal(tried.setting, tried.estimate, False, "nothing fits this card, not even QLoRA at micro-batch 1")


def parse_size(text: str) -> int:
    """``24GB``, ``24GiB``, ``80g``, ``24`` (GiB) -> bytes. GPU makers' "GB" are GiB in practice."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b").removesuffix("g")
    try:
        value = float(t)
    except ValueError:
        raise UserError(f"cannot read `{text}` as a memory size", where="--gpu-memory", fix="e.g. 24GB") from None
    if value <= 0:
        raise UserError(f"memory size must be positive, got `{text}`", where="--gpu-memory", fix="e.g. 24GB")
    return int(value * GIB)
