"""DeepSpeed ZeRO-2/3: the launcher's DeepSpeed settings, the engine, its steps and whole checkpoints.

``accelerate launch --config_file configs/accelerate/deepspeed_zero{2,3}.yaml`` exports the
DeepSpeed settings; accelerate's ``DeepSpeedPlugin`` reads them (or a ``deepspeed_config_file``)
into a DeepSpeed config, and we hand that to ``deepspeed.initialize`` ourselves instead of going
through ``accelerator.prepare``. Why: accelerate's DeepSpeed path divides each micro-batch loss by
a fixed accumulation count and lets the engine decide when to step, while our loss is normalised
by the trained tokens of the whole global batch and a step's micro-batch count can change (an
OOM split, a short last step). DeepSpeed's unmanaged accumulation mode fits that exactly:
``backward`` only accumulates, ``step`` is the boundary.

The training config stays the one source of truth: micro-batch, accumulation, clipping, the
AdamW optimizer, the learning-rate schedule and precision (autocast over fp32 master weights,
as in DDP and FSDP) come from it; the launcher decides only how ZeRO shards and offloads.
Checkpoints are gathered into the same whole, index-keyed files as every other path, so a run
saved under ZeRO-3 on 8 GPUs resumes on one process, and the other way round.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.errors import UserError
from curiosity_sft.training.batching import Batch
from curiosity_sft.training.distributed import Parallelism, World
from curiosity_sft.training.step import StepRunner

log = logging.getLogger(__name__)

SCHEDULED = ("lr", "initial_lr")  # what the learning-rate schedule changes in every group alike
INSTALL_FIX = "pip install '.[deepspeed]' (or use configs/accelerate/fsdp.yaml: the same sharding as ZeRO-3)"


def launcher_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The DeepSpeed config the launcher asked for, as accelerate parses it from its environment
    (``env``: the variables a launcher config would export, for ``curiosity-sft plan``)."""
    from accelerate.utils import DeepSpeedPlugin

    with _environment(env):
        return copy.deepcopy(DeepSpeedPlugin().deepspeed_config)


@contextlib.contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    """``DeepSpeedPlugin`` reads only ``os.environ``: lend it ``env`` for the call."""
    if env is None:
        yield
        return
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def engine_config(launcher: dict[str, Any], cfg: SFTConfig, accumulation: int, world_size: int,
                  hidden_size: int, amp: torch.dtype | None) -> dict[str, Any]:
    """The launcher's ZeRO settings with everything the training config owns filled in from it.

    ``"auto"`` bucket sizes (as in Hugging Face's example DeepSpeed files) get transformers'
    hidden-size rules; any other ``"auto"`` left is an error naming its key, not a DeepSpeed
    traceback.
    """
    if amp == torch.float16:
        raise UserError("fp16 with DeepSpeed is not supported (its loss scaling would replace ours)",
                        fix="set precision: bf16 (or fp32), or launch with configs/accelerate/fsdp.yaml")
    c = copy.deepcopy(launcher)
    if c.get("zero_optimization", {}).get("stage", 0) == 0:
        raise UserError("DeepSpeed without ZeRO (zero_stage 0) is plain data parallelism",
                        fix="use configs/accelerate/ddp.yaml, or zero_stage 2 or 3 (configs/accelerate/"
                            "deepspeed_zero2.yaml, deepspeed_zero3.yaml)")
    for key in ("optimizer", "scheduler"):
        if c.pop(key, None) is not None:
            log.warning("DeepSpeed config's %r section ignored: the training config's AdamW and lr_scheduler are used",
                        key)
    for key in ("fp16", "bf16"):
        section = c.pop(key, None)
        if isinstance(section, dict) and section.get("enabled") is True:
            log.warning("DeepSpeed config's %s section ignored: precision comes from the training config "
                        "(autocast over fp32 master weights)", key)
    for key, ours, name in (("gradient_clipping", cfg.max_grad_norm, "max_grad_norm"),
                            ("gradient_accumulation_steps", accumulation, "gradient_accumulation_steps")):
        theirs = c.get(key, "auto")
        if theirs not in ("auto", ours):
            log.warning("launcher %s %s ignored: the training config's %s %s is used", key, theirs, name, ours)
    c.update(train_micro_batch_size_per_gpu=cfg.batch_size, gradient_accumulation_steps=accumulation,
             train_batch_size=cfg.batch_size * accumulation * world_size, gradient_clipping=cfg.max_grad_norm,
             managed_gradient_accumulation=False,
             # Our optimizer is torch's AdamW, fused also when ZeRO offloads its step to the CPU: there
             # it is as fast as DeepSpeed's compiled CPU Adam (bench/bench_cpu_adam.py), without a build.
             zero_allow_untested_optimizer=True, zero_force_ds_cpu_optimizer=False)
    zero = c.setdefault("zero_optimization", {})
    for key, value in (("reduce_bucket_size", hidden_size * hidden_size),
                       ("stage3_prefetch_bucket_size", int(0.9 * hidden_size * hidden_size)),
                       ("stage3_param_persistence_threshold", 10 * hidden_size)):
        if zero.get(key) == "auto":
            zero[key] = value
    left = _auto_keys(c)
    if left:
        raise UserError(f"the DeepSpeed config leaves {left[0]} as \"auto\"",
                        fix="give it a value in your deepspeed_config_file (this trainer fills in only batch sizes, "
                            "accumulation, clipping and bucket sizes)")
    return c


def _auto_keys(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _auto_keys(v, f"{path}.{key}" if path else str(key))]
    return [path] if node == "auto" else []


def offloads_optimizer(config: dict[str, Any]) -> bool:
    return config.get("zero_optimization", {}).get("offload_optimizer", {}).get("device") in ("cpu", "nvme")


def start_engine(objective: torch.nn.Module, optimizer: torch.optim.Optimizer, config: dict[str, Any]) -> Any:
    """``deepspeed.initialize`` over the already created process group (gloo on CPU, nccl on GPU)."""
    import deepspeed  # make_world has checked that it is installed

    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)  # it logs its whole config at INFO on every rank
    engine, *_ = deepspeed.initialize(model=objective, optimizer=optimizer, config=config)
    return engine


class EngineStepRunner(StepRunner):
    """Optimizer steps through a DeepSpeed engine.

    ZeRO reduces (stage 2) or reduce-scatters (stage 3) gradients into their shards during each
    backward, so there is no ``no_sync``; ``step`` clips, updates and skips a step whose gradient
    norm is not finite (``was_step_applied``). Gradients already handed to the shards cannot be
    taken back, so an out-of-memory in a backward pass stops with an error instead of redoing the
    step at a smaller micro-batch (an OOM in a forward pass on one process still splits it).
    """

    def __init__(self, engine: Any, params: list[torch.nn.Parameter], device: torch.device,
                 amp: torch.dtype | None, parallel: Parallelism) -> None:
        super().__init__(engine.module, engine.optimizer, params, device, amp, None, engine.gradient_clipping(),
                         parallel=parallel)
        self.engine = engine

    def _backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)  # the loss is already normalised over the global batch

    def _restart(self) -> None:
        raise UserError("out of memory in a backward pass under DeepSpeed",
                        fix="lower batch_size (raise gradient_accumulation_steps to keep the global batch), enable "
                            "gradient_checkpointing, or offload (offload_optimizer_device: cpu in the launcher "
                            "config); the last checkpoint is intact")

    def _apply(self, loss: float) -> tuple[float, bool]:
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        grad_norm = float(norm) if norm is not None else math.nan
        # What the engine did is what counts (the scheduler steps with it): its check of the gradient
        # norm is the guard here, as a non-finite loss gives a non-finite gradient.
        return grad_norm, bool(self.engine.was_step_applied())


class ZeRO(Parallelism):
    """DeepSpeed ZeRO-2/3: an engine over the loss module, partitioned weights and AdamW moments
    gathered to whole tensors for a checkpoint, and split again on load.

    DeepSpeed's tensor-fragment API assembles each parameter's fp32 master weight and optimizer
    state from the partitions; the result is written in ``torch.optim``'s index-keyed form, the
    same files as one process or DDP writes. Weights are loaded into the model before
    ``deepspeed.initialize`` partitions it, so ``restore_optimizer`` only places the optimizer
    state. Every rank must call both: they are collectives.
    """

    collective = True

    def __init__(self, world: World, config: dict[str, Any]) -> None:
        super().__init__(world)
        self.config = config
        self.name = f"DeepSpeed ZeRO-{config.get('zero_optimization', {}).get('stage', 0)}"
        self.engine: Any = None
        self.objective: torch.nn.Module | None = None

    def prepare(self, objective: torch.nn.Module, layers: Sequence[torch.nn.Module]) -> None:
        self.objective = objective  # deepspeed.initialize partitions it once the optimizer exists

    def attach(self, optimizer: torch.optim.Optimizer, filler: Batch) -> None:
        assert self.objective is not None
        by_id = {id(p): n for n, p in self.objective.model.named_parameters()}
        self.named = [(by_id[id(p)], p) for g in optimizer.param_groups for p in g["params"]]
        # torch.optim's own groups (decay / no decay), before DeepSpeed swaps in its flat partitions;
        # ZeRO-3 may split a large group into several sub-groups, so the files keep these.
        self.groups = [({k: v for k, v in g.items() if k != "params"}, len(g["params"])) for g in optimizer.param_groups]
        self.engine = start_engine(self.objective, optimizer, self.config)
        self.module = self.engine
        self.basic: torch.optim.Optimizer = self.engine.optimizer.optimizer  # torch's AdamW over ZeRO's flat shards
        self.filler = filler
        if self.engine.zero_optimization_stage() < 3:
            self._create_state(every_group=True)

    def optimizer_order(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
        return [n for n, _ in self.named]

    def step_runner(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    params: list[torch.nn.Parameter], amp: torch.dtype | None, scaler: Any,
                    max_grad_norm: float) -> StepRunner:
        return EngineStepRunner(self.engine, params, self.world.device, amp, self)

    def _moments(self) -> tuple[list[str], torch.Tensor]:
        """The per-parameter state keys (``exp_avg``, ``exp_avg_sq``, ...) and the shared step count."""
        first = next(iter(self.basic.state.values()))
        keys = sorted(k for k, v in first.items() if k != "step" and torch.is_tensor(v) and v.dim() > 0)
        return keys, first["step"]

    def _param_groups(self) -> list[dict[str, Any]]:
        """The saved groups: torch.optim's, with the schedule's current learning rate."""
        current = {k: v for k, v in self.basic.param_groups[0].items() if k in SCHEDULED}
        out, start = [], 0
        for meta, n in self.groups:
            out.append({**meta, **current, "params": list(range(start, start + n))})
            start += n
        return out

    def gather_state(self, model: torch.nn.Module, optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

        keys, step = self._moments()
        weights: dict[str, torch.Tensor] = {}
        state: dict[int, dict[str, torch.Tensor]] = {}
        for i, (name, p) in enumerate(self.named):
            w = safe_get_full_fp32_param(p).detach().cpu().contiguous()
            moments = {k: safe_get_full_optimizer_state(p, k).detach().cpu().contiguous() for k in keys}
            if self.world.is_main:
                weights[name] = w
                state[i] = {"step": torch.tensor(float(step)), **moments}  # on the CPU, as torch.optim saves it
        if not self.world.is_main:
            return {}, {}
        return weights, {"state": state, "param_groups": self._param_groups()}

    def restore_optimizer(self, optimizer: Any, state: dict[str, Any]) -> None:
        from deepspeed.utils import safe_set_full_optimizer_state

        saved = {int(i): v for i, v in state["state"].items()}
        if sorted(saved) != list(range(len(self.named))):
            raise UserError(f"the checkpoint's optimizer state has {len(saved)} parameters, the model trains "
                            f"{len(self.named)}", fix="resume with the same config (peft_enable, lora_r, lora targets)")
        self._create_state()
        keys, _ = self._moments()
        for i, (_, p) in enumerate(self.named):
            for k in keys:
                safe_set_full_optimizer_state(p, saved[i][k], k)
        step = saved[0]["step"]
        for s in self.basic.state.values():
            s["step"] = step.to(s["step"].device, s["step"].dtype).clone()
        scheduled = {k: v for k, v in state["param_groups"][0].items() if k in SCHEDULED}
        for group in self.basic.param_groups:  # the schedule's learning rate at the checkpoint's step
            group.update(scheduled)

    def _create_state(self, every_group: bool = False) -> None:
        """Make the AdamW state exist, linked to the parameters, before the first real step, so that
        saved moments have somewhere to go and every group's moments can be gathered.

        torch's AdamW creates its state at its first step, and ZeRO-2 links each parameter to its
        slice of that state only then, after stepping its *first* group: a second group's state
        (the decay groups) does not exist yet at that moment and is never linked, so gathering
        it fails. With ``every_group`` every group's state is created first, by one step of
        torch's AdamW at learning rate 0 on zero gradients. Then one engine step at learning rate
        0 over a batch with no trained tokens links them through public calls. No weight moves,
        the step counts are set back to 0 (a fresh AdamW), and the RNG streams are forked so the
        run draws what it would have drawn.
        """
        if self.basic.state and not every_group:
            return
        lrs = [g["lr"] for g in self.basic.param_groups]
        for g in self.basic.param_groups:
            g["lr"] = 0.0
        if every_group:
            flats = [p for g in self.basic.param_groups for p in g["params"]]
            for p in flats:
                p.grad = torch.zeros_like(p)
            self.basic.step()
            for p in flats:
                p.grad = None
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if torch.cuda.is_available() else []):
            self.engine.backward(self.forward(self.filler.to(self.world.device))[0], scale_wrt_gas=False)
            self.engine.step()
        for g, lr in zip(self.basic.param_groups, lrs, strict=True):
            g["lr"] = lr
        if every_group:
            for s in self.basic.state.values():
                s["step"].zero_()
