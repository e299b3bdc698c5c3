"""One optimizer step: accumulate gradients over micro-batches, survive CUDA OOM, guard against NaN.

OOM recovery keeps the global batch: the step's remaining micro-batches are split row-wise in two
(micro-batch halved, accumulation doubled) and the split persists for later steps. The data plan
itself never changes, so resume positions stay valid; only how each planned micro-batch is
executed does. If the OOM struck during a forward pass, gradients of the micro-batches already
done are kept; if it struck during backward, some gradients may be half-accumulated, so the step
is redone from zero at the smaller size. Either way the step's loss and gradient are those of the
same tokens, normalised by the same token count.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from curiosity_sft.errors import UserError
from curiosity_sft.training.batching import Batch
from curiosity_sft.training.distributed import Parallelism, World
from curiosity_sft.training.loss import sum_token_loss

log = logging.getLogger(__name__)


@dataclass
class StepOutcome:
    """``applied`` is False when the step was skipped (non-finite loss or gradient).

    ``scale_overflow`` marks an fp16 step whose gradient overflowed at the current loss scale:
    the scaler lowers the scale and this is routine, not a sign of divergence.
    """

    loss: float
    grad_norm: float
    n_real: int
    n_trained: int
    applied: bool
    scale_overflow: bool = False


def split_into(b: Batch, pieces: int) -> list[Batch]:
    """Split a micro-batch row-wise into up to ``pieces`` parts (never below one row)."""
    if pieces <= 1 or b.n_rows == 1:
        return [b]
    a, c = b.split()
    return split_into(a, pieces // 2) + split_into(c, pieces // 2)


def forward_count(rows: int, split: int) -> int:
    """How many forward passes ``split_into`` makes of a micro-batch of ``rows`` rows."""
    if split <= 1 or rows == 1:
        return 1
    return forward_count(rows // 2, split // 2) + forward_count(rows - rows // 2, split // 2)


class TokenLoss(torch.nn.Module):
    """The model with the SFT loss as its forward, so a DDP/FSDP/ZeRO wrapper sees (and syncs) every forward."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
        return sum_token_loss(self.model, Batch(input_ids, labels, position_ids, ()))


class StepRunner:
    """Runs optimizer steps for one model/optimizer pair; ``split`` is the persistent OOM split factor.

    ``parallel`` is the run's parallelism object (distributed.py): it runs the forward through
    its wrapper, skips the gradient sync between micro-batches, adds numbers over processes and
    decides what an out-of-memory error means. Without one, the runner is a single process.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter],
                 device: torch.device, amp: torch.dtype | None, scaler: Any, max_grad_norm: float,
                 split: int = 1, on_split: Callable[[int], None] | None = None,
                 parallel: Parallelism | None = None) -> None:
        self.model, self.optimizer, self.params = model, optimizer, params
        self.device, self.amp, self.scaler = device, amp, scaler
        self.max_grad_norm = max_grad_norm
        self.split = split
        self.on_split = on_split
        if parallel is None:
            parallel = Parallelism(World(None, 0, 1, device))
            parallel.prepare(TokenLoss(model), [])
        self.parallel = parallel

    def _forward_backward(self, b: Batch, n_tokens: int, phase: list[str], last: bool) -> float:
        phase[0] = "forward"
        b = b.to(self.device)
        size = self.parallel.world_size
        with self.parallel.no_sync() if not last else contextlib.nullcontext():
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                s, _ = self.parallel.forward(b)
            # DDP and FSDP average gradients over processes; the loss is already normalised by the
            # trained tokens of the whole global batch, so scale the average back to a sum.
            loss = s * size / max(n_tokens, 1)
            phase[0] = "backward"
            self._backward(loss)
        return float(loss.detach()) / size

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def _restart(self) -> None:
        """Drop the step's partly accumulated gradients, to redo it at a smaller micro-batch."""
        self.optimizer.zero_grad(set_to_none=True)

    def _halve(self, piece: Batch) -> None:
        if piece.n_rows == 1:
            raise UserError("out of memory with a single row per micro-batch",
                            fix="enable gradient_checkpointing, lower max_length, use LoRA or load_in_4bit; "
                                "`curiosity-sft plan` estimates what fits")
        self.split *= 2
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        log.warning("CUDA out of memory: micro-batch halved, accumulation doubled (split %d); global batch unchanged",
                    self.split)
        if self.on_split:
            self.on_split(self.split)

    def _pieces(self, micro: list[Batch], shares: Sequence[Sequence[int]] | None, filler: Batch | None) -> list[Batch]:
        """This process's forward passes for the step, padded to as many as the busiest process runs.

        A sharded forward (FSDP, ZeRO-3) is a collective, and so is the gradient all-reduce of a
        step's last micro-batch: every process must run the same number. A short step (the last
        of an epoch or of a packing window) gives some processes fewer micro-batches; they run
        ``filler``, a batch that trains nothing. ``shares`` holds every process's micro-batch
        sizes (rows), which every process knows from the shared plan.
        """
        out = [p for b in micro for p in split_into(b, self.split)]
        if shares is not None and filler is not None:
            most = max(sum(forward_count(rows, self.split) for rows in share) for share in shares)
            out += [filler] * (most - len(out))
        return out

    def accumulate(self, micro: list[Batch], n_tokens: int | None = None, *,
                   shares: Sequence[Sequence[int]] | None = None, filler: Batch | None = None) -> tuple[float, int]:
        """Forward+backward over this process's micro-batches; returns (its share of the loss, real tokens).

        ``n_tokens`` is the trained-token count of the whole global batch (all processes); by
        default that of ``micro``.
        """
        if n_tokens is None:
            n_tokens = sum(b.n_trained for b in micro)
        pending = self._pieces(micro, shares, filler)
        total, i = 0.0, 0
        phase = [""]
        while i < len(pending):
            try:
                total += self._forward_backward(pending[i], n_tokens, phase, last=i == len(pending) - 1)
                i += 1
            except torch.OutOfMemoryError:
                self.parallel.out_of_memory(pending[i].n_rows)  # several processes: stops here
                redo = phase[0] == "backward"  # gradients may be partly accumulated: redo the step
                if redo:
                    self._restart()
                self._halve(pending[i])
                if redo:
                    pending = self._pieces(micro, shares, filler)
                    total, i = 0.0, 0
                else:
                    pending = pending[:i] + [q for p in pending[i:] for q in split_into(p, 2)]
        return total, sum(b.n_real for b in micro)

    def run(self, micro: list[Batch], n_tokens: int | None = None, *,
            shares: Sequence[Sequence[int]] | None = None, filler: Batch | None = None) -> StepOutcome:
        """Accumulate, clip, and apply the update unless the loss or gradient is not finite.

        With several processes the loss is the global batch's (summed over ranks); the gradient
        norm is already global after the all-reduce, so every rank takes the same decision.
        """
        loss, n_real = self.accumulate(micro, n_tokens, shares=shares, filler=filler)
        loss = self.parallel.sum(loss)
        n_trained = sum(b.n_trained for b in micro) if n_tokens is None else n_tokens
        grad_norm, ok = self._apply(loss)
        return StepOutcome(loss, grad_norm, n_real, n_trained, ok,
                           scale_overflow=bool(self.scaler) and math.isfinite(loss) and not ok)

    def _apply(self, loss: float) -> tuple[float, bool]:
        """Clip and update unless the loss or the gradient is not finite; returns (gradient norm, applied)."""
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm))
        ok = math.isfinite(loss) and math.isfinite(grad_norm)
        if ok:
            if self.scaler:
                self.scaler.step(self.optimizer)
            else:
                self.optimizer.step()
        if self.scaler:
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm, ok
