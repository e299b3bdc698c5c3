"""One process or many: what the launcher asked for, the world it started, and the one object that
decides how the model's forward passes, gradients and state meet across processes.

``accelerate launch`` and ``torchrun`` both start N copies of the same command with RANK /
WORLD_SIZE set; ``Accelerator()`` reads them and sets up the process group (gloo on CPU, nccl on
GPU). A single process never creates an Accelerator, so the one-process path is plain PyTorch.

The launcher's wishes are read once into a ``Launch`` record (a pure function of the
environment, so ``curiosity-sft plan`` can show what a launcher config would do without
launching), and a run builds exactly one ``Parallelism`` object from it:

- ``Parallelism`` itself: one process, the model as it is;
- ``DDP``: replicas through ``accelerator.prepare_model``;
- ``FSDP2`` (``fsdp.py``): PyTorch's ``fully_shard`` applied directly;
- ``ZeRO`` (``zero.py``): a DeepSpeed engine.

The object owns the forward pass, skipping the gradient sync between accumulation micro-batches,
gathering whole weights and optimizer states for a checkpoint (so N processes resume on M),
and what happens on an out-of-memory error. The training loop never asks which one it has.

Data parallelism without a distributed sampler: every rank walks the same deterministic plan of
micro-batches and takes every ``world``-th one of each optimizer step. Each rank therefore knows
the trained-token count of the whole global batch without communicating, each example is seen
once per epoch across ranks, and the data position in a checkpoint is a position in that one
shared plan.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from curiosity_sft.errors import UserError
from curiosity_sft.training.batching import Batch
from curiosity_sft.training.checkpoint import trainable_state

if TYPE_CHECKING:
    from curiosity_sft.training.step import StepRunner

log = logging.getLogger(__name__)
T = TypeVar("T")

# Tokenization can take minutes on rank 0 while the others wait in a broadcast: the default
# 10-minute collective timeout must not kill the job.
PROCESS_GROUP_TIMEOUT = timedelta(hours=2)


def _flag(env: Mapping[str, str], key: str, default: bool = False) -> bool:
    return env.get(key, str(default)).strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class FsdpSettings:
    """The FSDP keys of an accelerate config that change what the loop does (accelerate exports them
    as FSDP_* variables). ``fsdp_auto_wrap_policy`` needs none: every decoder layer is a unit."""

    reshard_after_forward: bool = True
    cpu_ram_efficient_loading: bool = False
    activation_checkpointing: bool = False
    offload_params: bool = False


@dataclass(frozen=True)
class Launch:
    """What the launcher asked for: how many processes and which way of meeting."""

    world_size: int = 1
    kind: str = "single"  # "single" | "ddp" | "fsdp" | "deepspeed"
    fsdp: FsdpSettings = field(default_factory=FsdpSettings)
    fsdp_on_one_process: bool = False  # asked for, but there is nothing to shard

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Launch:
        env = os.environ if env is None else env
        size = int(env.get("WORLD_SIZE", "1"))
        fsdp = _flag(env, "ACCELERATE_USE_FSDP")
        settings = FsdpSettings(
            reshard_after_forward=_flag(env, "FSDP_RESHARD_AFTER_FORWARD", True),
            cpu_ram_efficient_loading=_flag(env, "FSDP_CPU_RAM_EFFICIENT_LOADING"),
            activation_checkpointing=_flag(env, "FSDP_ACTIVATION_CHECKPOINTING"),
            offload_params=_flag(env, "FSDP_OFFLOAD_PARAMS"))
        if fsdp and size > 1:
            kind = "fsdp"
        elif _flag(env, "ACCELERATE_USE_DEEPSPEED"):
            kind = "deepspeed"  # also on one process: ZeRO-Offload on a single GPU
        else:
            kind = "ddp" if size > 1 else "single"
        return cls(size, kind, settings if kind == "fsdp" else FsdpSettings(), fsdp and size == 1)

    @property
    def shards_parameters(self) -> bool:
        """FSDP2 and ZeRO-3 split the weights themselves (ZeRO-2 only gradients and optimizer states)."""
        return self.kind == "fsdp"


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

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on any: how ranks agree to stop at the same step."""
        return self.sum(1.0 if flag else 0.0) > 0 if self.size > 1 else flag

    def gather(self, value: T) -> list[T]:
        """Every process's ``value``, in rank order, on every process (a collective)."""
        if self.size == 1:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def from_main(self, make: Callable[[], T]) -> T:
        """Run ``make`` on rank 0 only and give every rank its result (tokenize once, not N times).

        A ``UserError`` on rank 0 is raised on every rank: the others would otherwise wait in the
        broadcast for a result that never comes.
        """
        if self.size == 1:
            return make()
        from accelerate.utils import broadcast_object_list

        box: list[Any] = [None]
        if self.is_main:
            try:
                box = [("ok", make())]
            except UserError as e:
                box = [("error", e.one_line())]
        broadcast_object_list(box, from_process=0)
        kind, value = box[0]
        if kind == "error":
            raise UserError(value)
        return value  # type: ignore[no-any-return]

    def agree(self, check: Callable[[], None]) -> None:
        """Run ``check`` on every rank; if it raises a ``UserError`` on any, raise it on all (the
        lowest rank's), so no rank goes on to wait in a collective the others never join."""
        error = None
        try:
            check()
        except UserError as e:
            if self.size == 1:
                raise
            error = e.one_line()
        errors = [e for e in self.gather(error) if e is not None]
        if errors:
            raise UserError(errors[0])

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


def deepspeed_requested() -> bool:
    return _flag(os.environ, "ACCELERATE_USE_DEEPSPEED")


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


class Parallelism:
    """One process, the model as it is; the base of every launcher's way of meeting.

    Built once per run. ``prepare`` wraps or shards the loss module before the optimizer exists,
    ``attach`` sees the optimizer (ZeRO builds its engine there); then the step runner calls
    ``forward``, ``no_sync``, ``sum`` and ``out_of_memory``, and checkpoints call
    ``gather_state`` / ``restore_optimizer``.
    """

    name = "none"
    collective = False  # True when gathering or restoring state needs every rank
    loads_on_meta = False  # True when this rank builds the model without weights (they come from rank 0)

    def __init__(self, world: World) -> None:
        self.world = world
        self.module: Any = None

    @property
    def world_size(self) -> int:
        return self.world.size

    def describe(self) -> str:
        if self.world.size == 1 and self.name == "none":
            return "none (1 process)"
        return f"{self.name} over {_processes(self.world.size)}"

    def prepare(self, objective: torch.nn.Module, layers: Sequence[torch.nn.Module]) -> None:
        """Wrap or shard ``objective`` (the model with the loss as its forward); ``layers`` are the
        decoder layers, for launchers that shard layer by layer."""
        self.module = objective

    def attach(self, optimizer: torch.optim.Optimizer, filler: Batch) -> None:
        """Called once the optimizer exists; ``filler`` is a batch that trains nothing."""

    def forward(self, b: Batch) -> tuple[torch.Tensor, int]:
        return self.module(b.input_ids, b.labels, b.position_ids)  # type: ignore[no-any-return]

    def no_sync(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def sum(self, value: float) -> float:
        return self.world.sum(value)

    def any(self, flag: bool) -> bool:
        return self.world.any(flag)

    def out_of_memory(self, rows: int) -> None:
        """A CUDA out-of-memory error in this process's forward or backward: return to let the step
        split its micro-batches and go on, or raise.

        One process splits. Several cannot: the error leaves this process between two collectives
        of a forward or backward that the others are already inside, so there is no point at which
        they could all agree to split together; the run stops with the fix instead, and the last
        checkpoint is intact.
        """
        if self.world.size > 1:
            raise UserError(f"CUDA out of memory on process {self.world.rank} of {self.world.size} ({self.name}) at a "
                            f"micro-batch of {rows} rows: several processes cannot split a step together",
                            fix="halve batch_size and double gradient_accumulation_steps (the same global batch) or "
                                "enable gradient_checkpointing (`curiosity-sft plan` estimates what fits), then "
                                "resume with --resume_from_checkpoint latest: the last checkpoint is intact")

    def gather_state(self, model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Whole trainable weights and ``torch.optim``-form optimizer state on rank 0 (others: empty).

        Replicas are identical after every step, so rank 0's copy is the whole state."""
        if not self.world.is_main:
            return {}, {}
        return trainable_state(model), optimizer.state_dict()

    def restore_optimizer(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        optimizer.load_state_dict(state)

    def optimizer_order(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
        """Parameter names in the order of the index keys of ``gather_state``'s optimizer state."""
        from curiosity_sft.training.optimizer import optimizer_names

        return optimizer_names(model, optimizer)

    def step_runner(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    params: list[torch.nn.Parameter], amp: torch.dtype | None, scaler: Any,
                    max_grad_norm: float) -> StepRunner:
        from curiosity_sft.training.step import StepRunner

        return StepRunner(model, optimizer, params, self.world.device, amp, scaler, max_grad_norm, parallel=self)


class DDP(Parallelism):
    """Replicas: ``accelerator.prepare_model`` wraps the loss module in DistributedDataParallel."""

    name = "DDP"

    def prepare(self, objective: torch.nn.Module, layers: Sequence[torch.nn.Module]) -> None:
        self.module = self.world.accelerator.prepare_model(objective)

    def no_sync(self) -> contextlib.AbstractContextManager[Any]:
        return self.world.no_sync(self.module)  # type: ignore[no-any-return]


def make_parallelism(launch: Launch, world: World, deepspeed_config: dict[str, Any] | None = None) -> Parallelism:
    """The one parallelism object of a run, from what the launcher asked for."""
    if launch.kind == "deepspeed":
        from curiosity_sft.training.zero import ZeRO

        assert deepspeed_config is not None
        return ZeRO(world, deepspeed_config)
    if launch.kind == "fsdp":
        from curiosity_sft.training.fsdp import FSDP2

        return FSDP2(world, launch.fsdp)
    if launch.kind == "ddp":
        return DDP(world)
    return Parallelism(world)
