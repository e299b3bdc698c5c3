"""One process or many: the launcher's world, read through accelerate, and how weights meet.

``accelerate launch`` and ``torchrun`` both start N copies of the same command with RANK /
WORLD_SIZE set; ``Accelerator()`` reads them and sets up the process group (gloo on CPU, nccl on
GPU). A single process never creates an Accelerator, so the one-process path is plain PyTorch.

Replicated training (DDP) goes through ``accelerator.prepare_model``. Sharded training (FSDP2,
asked for by an accelerate FSDP config or ``ACCELERATE_USE_FSDP=true``) applies PyTorch's
``fully_shard`` directly, the same FSDP2 that accelerate itself calls, because accelerate only
enables FSDP on GPUs while ``fully_shard`` also runs over gloo: that way the path users run on
8 GPUs is the one the CPU tests exercise. DeepSpeed ZeRO-2/3 (an accelerate DeepSpeed config)
is driven through its engine (``zero.py``). Checkpoints are always whole, index-keyed
``torch.optim`` states, gathered from the shards, so N processes resume on M.

Data parallelism without a distributed sampler: every rank walks the same deterministic plan of
micro-batches and takes every ``world``-th one of each optimizer step. Each rank therefore knows
the trained-token count of the whole global batch without communicating, each example is seen
once per epoch across ranks, and the data position in a checkpoint is a position in that one
shared plan, so a run saved on N processes resumes on M.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch

from curiosity_sft.errors import UserError
from curiosity_sft.training.checkpoint import trainable_state

log = logging.getLogger(__name__)
T = TypeVar("T")

# Tokenization can take minutes on rank 0 while the others wait in a broadcast: the default
# 10-minute collective timeout must not kill the job.
PROCESS_GROUP_TIMEOUT = timedelta(hours=2)


@dataclass
class World:
    """This process's place in the job; a single process is ``World(None, 0, 1, device)``."""

    accelerator: Any
    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            self.accelerator.wait_for_everyone()

    def sum(self, value: float) -> float:
        """Sum a Python number over ranks (identity on one process)."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        return float(self.accelerator.reduce(t, "sum")[0])

    def gather(self, value: T) -> list[T]:
        """Every process's ``value``, in rank order, on every process (a collective)."""
        if self.size == 1:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def from_main(self, make: Callable[[], T]) -> T:
        """Run ``make`` on rank 0 only and give every rank its result (tokenize once, not N times)."""
        if self.size == 1:
            return make()
        from accelerate.utils import broadcast_object_list

        box = [make() if self.is_main else None]
        broadcast_object_list(box, from_process=0)
        return box[0]  # type: ignore[return-value]

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        """Skip the gradient all-reduce for an accumulation micro-batch that is not the step's last."""
        if self.size == 1:
            return contextlib.nullcontext()
        return self.accelerator.no_sync(model)


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def make_world(device: torch.device) -> World:
    """The world this process was launched into; ``device`` is used when there is only one process."""
    if deepspeed_requested() and importlib.util.find_spec("deepspeed") is None:
        from curiosity_sft.training.zero import INSTALL_FIX

        raise UserError("the launcher config asks for DeepSpeed, which is not installed", fix=INSTALL_FIX)
    if launched_world_size() == 1:
        if fsdp_requested():
            log.warning("FSDP on one process has nothing to shard: training unsharded (to offload to CPU RAM on "
                        "one GPU, launch with configs/accelerate/deepspeed_zero3_offload.yaml)")
        return World(None, 0, 1, device)  # DeepSpeed on one process (ZeRO-Offload) needs no Accelerator either
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    # mixed_precision "no": the training config decides precision (its own autocast), not the launcher.
    acc = Accelerator(cpu=device.type == "cpu", mixed_precision="no",
                      kwargs_handlers=[InitProcessGroupKwargs(timeout=PROCESS_GROUP_TIMEOUT)])
    if deepspeed_requested():
        # On GPUs accelerate registers ZeRO-3 with transformers, whose from_pretrained would then
        # build the model already partitioned (zero.Init); we load whole weights (LoRA, resume)
        # and let deepspeed.initialize partition them.
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()
    return World(acc, acc.process_index, acc.num_processes, acc.device)


def my_share(items: Sequence[T], rank: int, size: int) -> list[T]:
    """This rank's micro-batches of one optimizer step: every ``size``-th, starting at ``rank``."""
    return list(items[rank::size])


def accumulation_for(global_batch: int, batch_size: int, world_size: int) -> int:
    """Accumulation steps that keep ``global_batch`` on ``world_size`` processes (``--keep-global-batch``)."""
    per_step = batch_size * world_size
    if global_batch % per_step:
        raise UserError(f"the checkpoint's global batch {global_batch} is not a multiple of batch_size {batch_size} x "
                        f"{world_size} processes", fix="change batch_size or the number of processes, or resume "
                                                        "without --keep-global-batch (the global batch changes)")
    return global_batch // per_step


def fsdp_requested() -> bool:
    """``accelerate launch`` with an FSDP config exports this; torchrun users set it by hand."""
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def deepspeed_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


class ReplicatedState:
    """Whole weights and optimizer state on every process (one process, or DDP replicas)."""

    collective = False  # rank 0 alone can read the state

    def gather(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
        return trainable_state(model), optimizer.state_dict()

    def restore(self, optimizer: torch.optim.Optimizer, optimizer_state: dict[str, Any]) -> None:
        optimizer.load_state_dict(optimizer_state)


class ShardedState:
    """FSDP2 shards gathered to whole tensors on save; optimizer states split again on load.

    ``torch.distributed.checkpoint.state_dict`` does the gathering and keys optimizer states by
    parameter name; we convert to and from ``torch.optim``'s index keys (the order of the
    trainable parameters, the same with or without sharding) so the files match the replicated
    ones. Weights need no restore here: they are loaded into the model before ``fully_shard``
    splits it. Every rank must call both methods: they are collectives.
    """

    collective = True  # every rank joins gather and restore
    PREFIX = "model."  # TokenLoss holds the model as ``.model``

    def __init__(self, objective: torch.nn.Module, names: list[str]) -> None:
        self.objective, self.names = objective, names

    def gather(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
        full = get_model_state_dict(self.objective, options=opts)
        osd = get_optimizer_state_dict(self.objective, optimizer, options=opts)
        if not full:  # ranks other than 0 receive nothing with cpu_offload
            return {}, {}
        index = {self.PREFIX + n: i for i, n in enumerate(self.names)}
        weights = {n: full[self.PREFIX + n].contiguous() for n in self.names}
        state = {index[k]: v for k, v in osd["state"].items()}
        groups = [{**g, "params": [index[k] for k in g["params"]]} for g in osd["param_groups"]]
        return weights, {"state": state, "param_groups": groups}

    def restore(self, optimizer: torch.optim.Optimizer, optimizer_state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        fqn = [self.PREFIX + n for n in self.names]
        osd = {"state": {fqn[int(i)]: v for i, v in optimizer_state["state"].items()},
               "param_groups": [{**g, "params": [fqn[int(i)] for i in g["params"]]}
                                for g in optimizer_state["param_groups"]]}
        opts = StateDictOptions(full_state_dict=True, strict=False)
        set_optimizer_state_dict(self.objective, optimizer, osd, options=opts)


def shard(objective: torch.nn.Module, layers: Sequence[torch.nn.Module], device: torch.device) -> None:
    """FSDP2 full shard: each decoder layer is a unit (gathered only while it runs), the rest is the root.

    ``FSDP_OFFLOAD_PARAMS=true`` (accelerate's ``fsdp_offload_params``) keeps the shards and the
    optimizer step in CPU RAM; on a CPU-only run everything is there already.
    """
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard

    offload = os.environ.get("FSDP_OFFLOAD_PARAMS", "false").lower() == "true" and device.type != "cpu"
    policy = CPUOffloadPolicy() if offload else OffloadPolicy()
    for layer in layers:
        fully_shard(layer, offload_policy=policy)
    fully_shard(objective, offload_policy=policy)


@contextlib.contextmanager
def fsdp_no_sync(objective: Any) -> Any:
    """FSDP2's counterpart of DDP's ``no_sync``: keep unreduced gradients across accumulation."""
    objective.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        objective.set_requires_gradient_sync(True)
