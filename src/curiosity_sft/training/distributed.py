"""One process or many: the launcher's world, read through accelerate.

``accelerate launch`` and ``torchrun`` both start N copies of the same command with RANK /
WORLD_SIZE set; ``Accelerator()`` reads them and sets up DDP (gloo on CPU, nccl on GPU), FSDP or
DeepSpeed from the launcher's config. The loop stays the same code for 1 process or 64.

Data parallelism without a distributed sampler: every rank walks the same deterministic plan of
micro-batches and takes every ``world``-th one of each optimizer step. Each rank therefore knows
the trained-token count of the whole global batch without communicating, each example is seen
once per epoch across ranks, and the data position in a checkpoint is a position in that one
shared plan, so a run saved on N processes resumes on M.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch

log = logging.getLogger(__name__)
T = TypeVar("T")

# Data preparation and tokenization can take minutes on rank 0 while others wait at a barrier:
# the default 10-minute collective timeout must not kill the job.
PROCESS_GROUP_TIMEOUT = timedelta(hours=2)


@dataclass
class World:
    """This process's place in the job; a single process is ``World(accelerator, 0, 1)``."""

    accelerator: Any
    rank: int
    size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def barrier(self) -> None:
        if self.size > 1:
            self.accelerator.wait_for_everyone()

    def sum(self, value: float) -> float:
        """Sum a Python number over ranks (identity on one process)."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        return float(self.accelerator.reduce(t, "sum")[0])


def make_world(device: str = "auto", mixed_precision: str = "no") -> World:
    """Create the Accelerator for this process from the launcher's environment."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    acc = Accelerator(cpu=cpu, mixed_precision=mixed_precision,
                      kwargs_handlers=[InitProcessGroupKwargs(timeout=PROCESS_GROUP_TIMEOUT)])
    return World(acc, acc.process_index, acc.num_processes)


def my_share(items: Sequence[T], rank: int, size: int) -> list[T]:
    """This rank's micro-batches of one optimizer step: every ``size``-th, starting at ``rank``."""
    if len(items) % size:
        raise ValueError(f"{len(items)} micro-batches cannot be split evenly over {size} processes")
    return list(items[rank::size])


def accumulation_for(global_batch: int, batch_size: int, world_size: int) -> int:
    """Accumulation steps that keep ``global_batch`` on ``world_size`` processes (``--keep-global-batch``)."""
    per_step = batch_size * world_size
    if global_batch % per_step:
        raise ValueError(f"global batch {global_batch} is not a multiple of batch_size {batch_size} x "
                         f"{world_size} processes")
    return global_batch // per_step
