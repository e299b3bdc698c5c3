"""The data stream: which examples each optimizer step trains on, and each process's part of them.

Two parts with a seam between them:

- a **sampler** decides the steps of an epoch: which examples, in which rows, in which order. It
  plans in units of the *global* batch (micro-batch x accumulation x processes), so the tokens of
  every step, and hence the loss curve, do not depend on how the global batch is split. The
  default, ``ShuffledSampler``, shuffles from (seed, epoch) and packs or length-groups window by
  window (batching.plan_epoch). A curriculum is another sampler: it may order examples by
  difficulty or by training progress, and whatever it needs to resume exactly goes in its
  ``state_dict``, which the checkpoint's training-state record carries;
- the **stream** walks those plans from a resumable position (epoch, step index), cuts each step
  into micro-batches and hands each process its share (every ``size``-th micro-batch). Each
  process collates only its own rows; the step's token counts come from per-example counts, so
  no process collates another's rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from curiosity_sft.errors import UserError
from curiosity_sft.training.batching import (
    IGNORE,
    Batch,
    Encoded,
    Plan,
    batches,
    collate,
    epoch_order,
    plan_epoch,
)
from curiosity_sft.training.distributed import my_share

# The filler that pads a short step's idle processes: one row of this many tokens is enough to
# take part in every collective of a forward and backward, whatever the model.
FILLER_TOKENS = 8


class Sampler(Protocol):
    """Decides the optimizer steps of each epoch; its state travels in the checkpoint."""

    def plan(self, epoch: int) -> Plan:
        """The steps of ``epoch``: each a list of rows, each row a list of example indices."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What this sampler needs to plan the same steps again after a resume."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...


class ShuffledSampler:
    """A fresh shuffle each epoch from (seed, epoch), then packed into rows of ``max_length``
    tokens or cut into length-grouped / mixed batches (batching.plan_epoch). Deterministic, so
    its state is only its name: the position alone resumes it."""

    name = "shuffled"

    def __init__(self, lengths: Sequence[int], global_batch: int, packing: bool, max_length: int, seed: int,
                 group_by_length: bool) -> None:
        self.lengths, self.global_batch = list(lengths), global_batch
        self.packing, self.max_length, self.seed, self.group_by_length = packing, max_length, seed, group_by_length

    def plan(self, epoch: int) -> Plan:
        order = epoch_order(len(self.lengths), self.seed, epoch)
        return plan_epoch(self.lengths, order, self.global_batch, self.packing, self.max_length,
                          seed=self.seed + epoch, group_by_length=self.group_by_length)

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("name", self.name) != self.name:
            raise UserError(f"the checkpoint's data order came from the `{state['name']}` sampler, this run uses "
                            f"`{self.name}`", fix="resume with the checkpoint's sampler settings")


def total_steps(sampler: Sampler, epochs: float, max_steps: int | None) -> int:
    """Optimizer steps of the whole run, counted over every epoch's own plan: packing makes each
    epoch's step count different, so epoch 0's count times ``epochs`` would be wrong."""
    if max_steps:
        return max_steps
    whole = int(epochs)
    steps = sum(len(sampler.plan(e)) for e in range(whole))
    if epochs > whole:
        steps += math.ceil((epochs - whole) * len(sampler.plan(whole)))
    return max(1, steps)


def without_labels(b: Batch) -> Batch:
    """The same inputs, training nothing."""
    return Batch(b.input_ids, torch.full_like(b.labels, IGNORE), b.position_ids, b.row_real)


@dataclass
class Step:
    """This process's micro-batches of one optimizer step, and what every process needs to agree on.

    ``n_real`` / ``n_trained`` count the whole global batch; ``shares`` lists every process's
    micro-batch sizes in rows (so each can pad to the busiest one's forward count); ``filler``
    is a batch that trains nothing, for that padding.
    """

    micro: list[Batch]
    n_real: int
    n_trained: int
    shares: list[list[int]]
    filler: Batch


class StepStream:
    """Each optimizer step's micro-batches, across epochs, from a resumable position."""

    def __init__(self, encoded: list[Encoded], sampler: Sampler, micro_batch: int, pad_id: int, epoch: int = 0,
                 index: int = 0, rank: int = 0, size: int = 1) -> None:
        self.encoded, self.sampler, self.micro_batch, self.pad_id = encoded, sampler, micro_batch, pad_id
        self.rank, self.size = rank, size
        self.lengths = [len(e.input_ids) for e in encoded]
        # What an example adds to Batch.n_trained once collated: its first label is never a target.
        self.trained = [sum(1 for x in e.labels[1:] if x != IGNORE) for e in encoded]
        self.epoch, self.index = epoch, index
        self._plan = sampler.plan(epoch)

    @property
    def per_epoch(self) -> int:
        return len(self._plan)

    def position(self) -> dict[str, int]:
        """Where the next step starts, normalised so a finished epoch reads as the next one's start."""
        if self.index >= len(self._plan):
            return {"epoch": self.epoch + 1, "index": 0}
        return {"epoch": self.epoch, "index": self.index}

    def progress(self) -> float:
        """Epochs done, as a fraction (for the logs)."""
        return self.epoch + self.index / max(1, len(self._plan))

    def filler(self) -> Batch:
        """A one-row batch that trains nothing (padding for short steps, ZeRO's state creation)."""
        short = min(range(len(self.encoded)), key=lambda i: self.lengths[i])
        b = collate([[self.encoded[short]]], self.pad_id)
        n = min(FILLER_TOKENS, b.input_ids.shape[1])
        return without_labels(Batch(b.input_ids[:, :n], b.labels[:, :n], b.position_ids[:, :n], (n,)))

    def __iter__(self) -> Iterator[Step]:
        mb = self.micro_batch
        filler = self.filler()
        while True:
            if self.index >= len(self._plan):
                self.epoch, self.index = self.epoch + 1, 0
                self._plan = self.sampler.plan(self.epoch)
            rows = self._plan[self.index]
            self.index += 1
            groups = [rows[i:i + mb] for i in range(0, len(rows), mb)]
            micro = list(batches(self.encoded, my_share(groups, self.rank, self.size), self.pad_id))
            shares = [[len(g) for g in my_share(groups, r, self.size)] for r in range(self.size)]
            examples = [i for row in rows for i in row]
            yield Step(micro, sum(self.lengths[i] for i in examples), sum(self.trained[i] for i in examples),
                       shares, filler)
