"""The data stream: which examples each optimizer step trains on, and each process's part of them.

Two parts with a seam between them:

- a **sampler** (``curriculum.strategy``, src/curiosity_sft/curriculum/) decides each step's
  rows: which examples, packed how, in which order. It decides in units of the *global* batch
  (micro-batch x accumulation x processes), so the tokens of every step, and hence the loss
  curve, do not depend on how the global batch is split; every process computes the same rows.
  The default, ``random``, walks today's epoch plans (``ShuffledSampler`` below: a shuffle from
  (seed, epoch), packed or length-grouped window by window); whatever a sampler needs to resume
  exactly is its ``state_dict``, which the checkpoint's training-state record carries;
- the **stream** asks the sampler for the rows of the step about to run, cuts them into
  micro-batches and hands each process its share (every ``size``-th micro-batch). Each process
  collates only its own rows; the step's token counts come from per-example counts, so no
  process collates another's rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

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


class StepSampler(Protocol):
    """Decides the rows of every optimizer step (``curriculum.Sampler``); its state travels in the checkpoint."""

    def next_step(self, step: int) -> list[list[int]]:
        """The rows (each a list of example indices) of the step that has ``step`` steps before it."""
        ...

    def epoch_progress(self) -> float:
        ...


class ShuffledSampler:
    """Today's epoch plan: a fresh shuffle each epoch from (seed, epoch), then packed into rows of
    ``max_length`` tokens or cut into length-grouped / mixed batches (batching.plan_epoch).
    Deterministic: the ``random`` curriculum walks it, and the run's length is counted on it."""

    def __init__(self, lengths: Sequence[int], global_batch: int, packing: bool, max_length: int, seed: int,
                 group_by_length: bool) -> None:
        self.lengths, self.global_batch = list(lengths), global_batch
        self.packing, self.max_length, self.seed, self.group_by_length = packing, max_length, seed, group_by_length

    def plan(self, epoch: int) -> Plan:
        order = epoch_order(len(self.lengths), self.seed, epoch)
        return plan_epoch(self.lengths, order, self.global_batch, self.packing, self.max_length,
                          seed=self.seed + epoch, group_by_length=self.group_by_length)


def total_steps(sampler: ShuffledSampler, epochs: float, max_steps: int | None) -> int:
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
    """Each optimizer step's micro-batches, from the sampler's rows for that step."""

    def __init__(self, encoded: list[Encoded], sampler: StepSampler, micro_batch: int, pad_id: int, rank: int = 0,
                 size: int = 1) -> None:
        self.encoded, self.sampler, self.micro_batch, self.pad_id = encoded, sampler, micro_batch, pad_id
        self.rank, self.size = rank, size
        self.lengths = [len(e.input_ids) for e in encoded]
        # What an example adds to Batch.n_trained once collated: its first label is never a target.
        self.trained = [sum(1 for x in e.labels[1:] if x != IGNORE) for e in encoded]
        self._filler: Batch | None = None

    def filler(self) -> Batch:
        """A one-row batch that trains nothing (padding for short steps, ZeRO's state creation)."""
        if self._filler is None:
            short = min(range(len(self.encoded)), key=lambda i: self.lengths[i])
            b = collate([[self.encoded[short]]], self.pad_id)
            n = min(FILLER_TOKENS, b.input_ids.shape[1])
            self._filler = without_labels(Batch(b.input_ids[:, :n], b.labels[:, :n], b.position_ids[:, :n], (n,)))
        return self._filler

    def next(self, step: int) -> Step:
        """The micro-batches of the optimizer step that has ``step`` steps before it (a skipped
        non-finite step asks again with the same ``step`` and gets the sampler's next rows)."""
        mb = self.micro_batch
        rows = self.sampler.next_step(step)
        groups = [rows[i:i + mb] for i in range(0, len(rows), mb)]
        micro = list(batches(self.encoded, my_share(groups, self.rank, self.size), self.pad_id))
        shares = [[len(g) for g in my_share(groups, r, self.size)] for r in range(self.size)]
        examples = [i for row in rows for i in row]
        return Step(micro, sum(self.lengths[i] for i in examples), sum(self.trained[i] for i in examples),
                    shares, self.filler())
