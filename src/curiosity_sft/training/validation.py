"""The validation loss during training: every process scores its share of the validation batches."""

from __future__ import annotations

from typing import Any

import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.training.batching import Encoded, batches, plan_epoch
from curiosity_sft.training.distributed import World, my_share
from curiosity_sft.training.loss import sum_token_loss
from curiosity_sft.training.stream import without_labels


@torch.no_grad()
def validation_loss(model: torch.nn.Module, encoded: list[Encoded], cfg: SFTConfig, pad_id: int,
                    device: torch.device, world: World | None = None, loss_fn: Any = None) -> float:
    """Mean loss per trained token over the validation set, each process taking its share of batches.

    Every process runs the same number of forward passes (padding with batches that score
    nothing), because a sharded forward is a collective.
    """
    loss_fn = loss_fn or (lambda b: sum_token_loss(model, b))
    was_training = model.training
    model.eval()
    plan = plan_epoch([len(e.input_ids) for e in encoded], list(range(len(encoded))), cfg.eval_batch_size,
                      False, cfg.max_length)
    rank, size = (world.rank, world.size) if world is not None else (0, 1)
    mine = list(batches(encoded, my_share(plan, rank, size), pad_id))
    if len(mine) < -(-len(plan) // size):  # fewer batches than another process: pad so forwards pair up
        mine.append(without_labels(next(batches(encoded, plan[:1], pad_id))))
    total, n = 0.0, 0
    for b in mine:
        s, k = loss_fn(b.to(device))
        total, n = total + float(s), n + k
    model.train(was_training)
    if world is not None:
        total, n = world.sum(total), int(world.sum(n))
    return total / max(n, 1)
