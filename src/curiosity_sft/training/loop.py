"""The training loop: plain PyTorch you can step through.

We own the loop rather than use ``transformers.Trainer`` because exact resume (data position and
every RNG), loss normalised over the tokens of the whole optimizer step, packing without
cross-attention and skipping the vocabulary head on untrained positions all need control of the
step. Models, LoRA, schedules and TensorBoard come from their libraries.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import get_scheduler

from curiosity_sft.chat_template import ChatTemplate
from curiosity_sft.config import SFTConfig, save_config
from curiosity_sft.errors import UserError
from curiosity_sft.io import atomic_write_json
from curiosity_sft.models import (
    apply_lora,
    count_parameters,
    load_model,
    load_quantized_model,
)
from curiosity_sft.training.batching import (
    IGNORE,
    Batch,
    Encoded,
    Plan,
    batches,
    encode_file,
    epoch_order,
    plan_epoch,
    training_template,
)
from curiosity_sft.training.checkpoint import (
    RunLock,
    find_checkpoint,
    load_checkpoint,
    load_trainable_state,
    load_weights,
    rng_state,
    save_checkpoint,
)
from curiosity_sft.training.distributed import (
    ReplicatedState,
    ShardedState,
    World,
    accumulation_for,
    deepspeed_requested,
    fsdp_no_sync,
    fsdp_requested,
    make_world,
    my_share,
    shard,
)
from curiosity_sft.training.export import export_run
from curiosity_sft.training.kernels import apply_liger, check_kernel_options, compile_layers
from curiosity_sft.training.loss import backbone_and_head, sum_token_loss
from curiosity_sft.training.optimizer import build_adamw, optimizer_name
from curiosity_sft.training.precision import choose_precision, pick_device, weight_dtype
from curiosity_sft.training.step import DataParallel, StepRunner
from curiosity_sft.training.telemetry import MetricsSink, memory_metrics, model_flops, peak_flops
from curiosity_sft.training.zero import (
    EngineState,
    EngineStepRunner,
    engine_config,
    launcher_config,
    start_engine,
)

log = logging.getLogger(__name__)

# Crash tests set this to SIGKILL the process right after the given optimizer step (and its
# checkpoint, if one is due), the only way to test recovery from a kill that no handler can see.
KILL_ENV = "CURIOSITY_SFT_SIGKILL_AFTER_STEP"


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    final_loss: float | None
    final_eval_loss: float | None


@dataclass
class Step:
    """This process's micro-batches of one optimizer step, and the token counts of the whole step."""

    micro: list[Batch]
    n_real: int
    n_trained: int


class StepStream:
    """Each optimizer step's micro-batches, across epochs, from a resumable position.

    The plan is made in units of the *global* batch (``global_batch`` rows: micro-batch x
    accumulation x processes) and only then cut into micro-batches, so the tokens of every
    optimizer step, and hence the loss curve, do not depend on how the global batch is split into
    micro-batch x accumulation x processes. The position is (epoch, step index in that epoch).
    Process ``rank`` of ``size`` collates only its own share; the step's token counts come from
    per-example counts, so no process collates another's rows.
    """

    def __init__(self, encoded: list[Encoded], cfg: SFTConfig, pad_id: int, epoch: int = 0, index: int = 0,
                 global_batch: int | None = None, rank: int = 0, size: int = 1) -> None:
        self.encoded, self.cfg, self.pad_id = encoded, cfg, pad_id
        self.global_batch = global_batch or cfg.global_batch_size
        self.rank, self.size = rank, size
        self.lengths = [len(e.input_ids) for e in encoded]
        # What an example adds to Batch.n_trained once collated: its first label is never a target.
        self.trained = [sum(1 for x in e.labels[1:] if x != IGNORE) for e in encoded]
        self.epoch, self.index = epoch, index
        self._plan = self._plan_for(epoch)

    def _plan_for(self, epoch: int) -> Plan:
        order = epoch_order(len(self.encoded), self.cfg.seed, epoch)
        return plan_epoch(self.lengths, order, self.global_batch, self.cfg.packing, self.cfg.max_length,
                          seed=self.cfg.seed + epoch, group_by_length=self.cfg.group_by_length)

    @property
    def per_epoch(self) -> int:
        return len(self._plan)

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def __iter__(self) -> Iterator[Step]:
        mb = self.cfg.batch_size
        while True:
            if self.index >= len(self._plan):
                self.epoch, self.index = self.epoch + 1, 0
                self._plan = self._plan_for(self.epoch)
            rows = self._plan[self.index]
            self.index += 1
            groups = [rows[i:i + mb] for i in range(0, len(rows), mb)]
            micro = list(batches(self.encoded, my_share(groups, self.rank, self.size), self.pad_id))
            if not micro:  # a short final step with fewer micro-batches than processes
                micro = [_without_labels(next(batches(self.encoded, groups[:1], self.pad_id)))]
            examples = [i for row in rows for i in row]
            yield Step(micro, sum(self.lengths[i] for i in examples), sum(self.trained[i] for i in examples))


LossFn = Callable[[Batch], tuple[torch.Tensor, int]]


@torch.no_grad()
def validation_loss(model: torch.nn.Module, encoded: list[Encoded], cfg: SFTConfig, pad_id: int,
                    device: torch.device, world: World | None = None, loss_fn: LossFn | None = None) -> float:
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
        mine.append(_without_labels(next(batches(encoded, plan[:1], pad_id))))
    total, n = 0.0, 0
    for b in mine:
        s, k = loss_fn(b.to(device))
        total, n = total + float(s), n + k
    model.train(was_training)
    if world is not None:
        total, n = world.sum(total), int(world.sum(n))
    return total / max(n, 1)


class TokenLoss(torch.nn.Module):
    """The model with the SFT loss as its forward, so a DDP wrapper sees (and syncs) every forward."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
        return sum_token_loss(self.model, Batch(input_ids, labels, position_ids, ()))


def _without_labels(b: Batch) -> Batch:
    """A micro-batch that trains nothing: a process with no share of a short final step runs it,
    so that it still joins the step's gradient all-reduce."""
    return Batch(b.input_ids, torch.full_like(b.labels, IGNORE), b.position_ids, b.row_real)


def _load_split(path: str | None, chat: ChatTemplate, cfg: SFTConfig, what: str) -> list[Encoded]:
    if path is None:
        return []
    if not Path(path).is_file():
        raise UserError(f"{what} file not found", where=path,
                        fix="run `curiosity-sft prepare` first or set train_file/val_file in the config")
    return encode_file(path, chat, cfg.max_length, cfg.reasoning_format, what).kept


def _check_output(out: Path, resume: str | None, overwrite: bool) -> None:
    manifest = out / "manifest.json"
    if resume is None and manifest.is_file() and not overwrite:
        raise UserError("this folder holds a finished run", where=out,
                        fix="choose another --output, resume with --resume_from_checkpoint, or pass --overwrite")


def train(cfg: SFTConfig, output_dir: str | Path, resume_from: str | None = None, overwrite: bool = False,
          show_progress: bool = True, keep_global_batch: bool = False) -> TrainResult:
    """Fine-tune ``cfg.model_name`` on ``cfg.train_file`` into ``output_dir``.

    Launched by ``torchrun``/``accelerate launch``, every process runs this; only rank 0 writes.
    ``keep_global_batch`` rescales accumulation on resume so the checkpoint's global batch holds
    on a different number of processes.
    """
    out = Path(output_dir)
    _check_output(out, resume_from, overwrite)
    world = make_world(pick_device(cfg))
    with RunLock(out) if world.is_main else contextlib.nullcontext():
        result = _train_locked(cfg, out, resume_from, show_progress and world.is_main, world, keep_global_batch)
    world.barrier()
    return result


def build_model(cfg: SFTConfig, device: torch.device, amp: torch.dtype | None) -> torch.nn.Module:
    """Fresh, pretrained or 4-bit base, with gradient checkpointing and LoRA as configured."""
    if cfg.load_in_4bit:
        model = load_quantized_model(cfg.model_name, amp or torch.bfloat16, cfg.gradient_checkpointing,
                                     attn_implementation=cfg.attn_implementation)
    else:
        model = load_model(cfg.model_name, hidden_dim=cfg.hidden_dim, num_layers=cfg.num_layers, seed=cfg.seed,
                           dtype=weight_dtype(cfg, amp), attn_implementation=cfg.attn_implementation)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if cfg.peft_enable:
                model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need grads
    if cfg.use_liger:
        apply_liger(model)
    if cfg.peft_enable:
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    if not cfg.load_in_4bit:
        model.to(device)
    if cfg.compile:
        log.info("torch.compile: %d decoder layers", compile_layers(backbone_and_head(model)[0]))
    model.train()
    return model


def _progress(show: bool) -> Progress:
    return Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    disable=not show, transient=False)


def _parallelism(states: Any, engine: Any) -> str:
    if engine is not None:
        return f"DeepSpeed ZeRO-{engine.zero_optimization_stage()}"
    return "FSDP2 full shard" if states.collective else "DDP"


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _resume_batch(cfg: SFTConfig, state: dict[str, Any], world: World, keep: bool) -> SFTConfig:
    """The config to continue with when the checkpoint was written by a different number of processes."""
    saved = state.get("global_batch", cfg.global_batch_size)
    if keep and saved != cfg.global_batch_size * world.size:
        accum = accumulation_for(saved, cfg.batch_size, world.size)
        log.info("--keep-global-batch: accumulation %d -> %d to keep the global batch of %d on %s",
                 cfg.gradient_accumulation_steps, accum, saved, _processes(world.size))
        return cfg.model_copy(update={"gradient_accumulation_steps": accum})
    return cfg


def _resume_position(state: dict[str, Any], global_batch: int) -> dict[str, int]:
    """The data position in a plan of ``global_batch``-row steps.

    The same global batch resumes exactly. A different one re-plans the epoch, so the position can
    only be carried over as a share of it: examples around the boundary may be seen twice or not
    at all in that epoch, which the warning says.
    """
    pos = dict(state["position"])
    saved = state.get("global_batch", global_batch)
    if saved != global_batch:
        pos["index"] = pos["index"] * saved // global_batch
        log.warning("the checkpoint's global batch was %d, now %d: the rest of epoch %d is re-planned and some of "
                     "its examples may be repeated or skipped (pass --keep-global-batch to keep it exact)",
                     saved, global_batch, pos["epoch"])
    return pos


def _train_locked(cfg: SFTConfig, out: Path, resume_from: str | None, show_progress: bool, world: World,
                  keep_global_batch: bool) -> TrainResult:
    torch.manual_seed(cfg.seed)
    device = world.device
    check_kernel_options(cfg, device)
    precision = world.from_main(lambda: choose_precision(cfg, device))  # one probe, not one per process
    amp = precision.dtype
    log.info("precision: %s", precision.describe())
    ckpt: Path | None = None
    state: dict[str, Any] = {}
    if resume_from is not None:
        ckpt = find_checkpoint(resume_from, out)
        state = json.loads((ckpt / "trainer_state.json").read_text())
        cfg = _resume_batch(cfg, state, world, keep_global_batch)
    chat = training_template(cfg.model_name, cfg.chat_template)  # probed, round-trip checked before weights load
    tok = chat.tok
    # Tokenize once on rank 0 and broadcast, not once per process.
    train_enc, val_enc = world.from_main(lambda: (_load_split(cfg.train_file, chat, cfg, "train"),
                                                  _load_split(cfg.val_file, chat, cfg, "validation")))

    model = build_model(cfg, device, amp)
    trainable, total = count_parameters(model)
    log.info("model %s: %s trainable of %s parameters (%s, %s)", cfg.model_name, f"{trainable:,}", f"{total:,}",
             "QLoRA" if cfg.load_in_4bit else "LoRA" if cfg.peft_enable else "full", amp or torch.float32)

    base_config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    if ckpt is not None:  # whole weights go into the plain model, before any wrapper splits it
        load_trainable_state(model, load_weights(ckpt), ckpt)

    objective = TokenLoss(model)
    forward: Any = objective
    states: ReplicatedState | ShardedState | EngineState = ReplicatedState()
    no_sync: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    fsdp = world.size > 1 and fsdp_requested()
    zero = deepspeed_requested() and not fsdp  # also on one process: ZeRO-Offload on a single GPU
    if fsdp:
        shard(objective, backbone_and_head(model)[0].layers, device)
        states = ShardedState(objective, [n for n, p in model.named_parameters() if p.requires_grad])
        no_sync = lambda: fsdp_no_sync(objective)  # noqa: E731
    elif world.size > 1 and not zero:
        forward = world.accelerator.prepare_model(objective)  # DistributedDataParallel
        no_sync = lambda: world.no_sync(forward)  # noqa: E731

    # Created after sharding: FSDP2 replaces the parameters with sharded ones.
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    global_batch = cfg.global_batch_size * world.size
    accum = cfg.gradient_accumulation_steps
    engine, ds_config = None, None
    if zero:
        ds_config = engine_config(launcher_config(), cfg, accum, world.size, base_config.hidden_size, amp)
    optimizer = build_adamw(params, cfg.learning_rate, cfg.weight_decay)
    log.info("optimizer: %s", optimizer_name(optimizer))
    if ds_config is not None:
        engine = start_engine(objective, optimizer, ds_config)
        forward = engine
    log.info("data parallelism: %s", "none (1 process)" if world.size == 1 and engine is None else
             f"{_parallelism(states, engine)} over {_processes(world.size)}")

    def loss_fn(b: Batch) -> tuple[torch.Tensor, int]:
        return forward(b.input_ids, b.labels, b.position_ids)

    if engine is not None:
        no_targets = _without_labels(next(batches(train_enc, [[[0]]], tok.pad_token_id))).to(device)
        states = EngineState(named, engine, world.is_main, zero_loss=lambda: loss_fn(no_targets)[0])

    parallel = DataParallel(forward=loss_fn, world_size=world.size, no_sync=no_sync, sum=world.sum)
    stream = StepStream(train_enc, cfg, tok.pad_token_id, global_batch=global_batch, rank=world.rank, size=world.size)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * stream.per_epoch))
    scheduler = get_scheduler(cfg.lr_scheduler if cfg.lr_scheduler != "constant" else "constant_with_warmup",
                              optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    if engine is not None:
        runner: StepRunner = EngineStepRunner(engine, params, device, amp, parallel)
    else:
        scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
        runner = StepRunner(model, optimizer, params, device, amp, scaler, cfg.max_grad_norm, parallel=parallel)

    step = 0
    if ckpt is not None:
        states.restore(optimizer, load_checkpoint(ckpt, scheduler, world.rank, world.size))
        step = state["step"]
        runner.split = state.get("micro_batch_split", 1)
        stream = StepStream(train_enc, cfg, tok.pad_token_id, global_batch=global_batch, rank=world.rank,
                            size=world.size, **_resume_position(state, global_batch))
        log.info("resumed from %s at step %d", ckpt, step)
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    sink = MetricsSink(out, step) if world.is_main else None
    # MFU against the matmul rate of the precision trained in (CPU: the probe's), not always fp32's
    peak = precision.rates.rate_of(amp) if precision.rates is not None else peak_flops(device)
    context = sum(len(e.input_ids) ** 2 for e in train_enc) / max(1, sum(len(e.input_ids) for e in train_enc))

    log.info("training %d steps: global batch %d = micro-batch %d x accumulation %d x %s, %d examples, packing %s",
             total_steps, global_batch, cfg.batch_size, accum, _processes(world.size), len(train_enc), cfg.packing)
    it = iter(stream)
    last_loss: float | None = None
    eval_loss: float | None = None
    bad_in_row = 0
    t_window, tok_window, flops_window = time.perf_counter(), 0, 0.0
    kill_after = int(os.environ.get(KILL_ENV, "0"))

    def checkpoint(at: int, position: dict[str, int], every_rank: bool = True) -> None:
        # Every process's RNG stream (its own dropout masks) is gathered, a collective; only
        # rank 0 checkpoints on Ctrl-C, when the others may be gone. DDP replicas are identical
        # after every step, so rank 0's state is the whole state; FSDP and ZeRO shards are
        # gathered to rank 0 (a collective every rank joins).
        rngs = world.gather(rng_state()) if every_rank else None
        if not (world.is_main or states.collective):
            return
        weights, optimizer_state = states.gather(model, optimizer)
        if world.is_main:
            save_checkpoint(out, at, weights, optimizer_state, scheduler,
                            {"position": position, "total_steps": total_steps, "micro_batch_split": runner.split,
                             "global_batch": global_batch, "world_size": world.size},
                            cfg, cfg.save_total_limit, rngs)

    def log_metrics(rec: dict[str, Any]) -> None:
        if sink is not None:
            sink.log(rec)

    with _progress(show_progress) as progress:
        task = progress.add_task("train", total=total_steps, completed=step, info="")
        try:
            while step < total_steps:
                position = stream.position()
                batch = next(it)
                n_real, n_trained = batch.n_real, batch.n_trained
                r = runner.run(batch.micro, n_trained)
                tok_window += n_real
                flops_window += model_flops(base_config, context, n_real, n_trained, frozen_base=cfg.peft_enable)
                if not r.applied:
                    if r.scale_overflow:
                        log.info("step %d: fp16 gradient overflow, loss scale lowered, step skipped", step + 1)
                        continue
                    bad_in_row += 1
                    log.warning("step %d: non-finite loss/gradient (%s / %s), step skipped", step + 1, r.loss,
                                r.grad_norm)
                    log_metrics({"step": step + 1, "skipped_nonfinite": bad_in_row})
                    if bad_in_row >= cfg.max_nonfinite_steps:
                        raise UserError(f"{bad_in_row} non-finite steps in a row at step {step + 1}", where=out,
                                        fix="lower learning_rate or use bf16/fp32; the last checkpoint is intact "
                                            "(resume with --resume_from_checkpoint latest)")
                    continue
                bad_in_row = 0
                scheduler.step()
                step += 1
                last_loss = r.loss
                progress.update(task, completed=step, info=f"loss {r.loss:.4f}")

                if step % cfg.logging_steps == 0 or step == total_steps:
                    dt = time.perf_counter() - t_window
                    rec = {"step": step, "epoch": round(position["epoch"] + position["index"] / stream.per_epoch, 4),
                           "loss": r.loss, "learning_rate": scheduler.get_last_lr()[0], "grad_norm": r.grad_norm,
                           "tokens_per_second": tok_window / dt if dt > 0 else 0.0, "window_seconds": dt,
                           "mfu": flops_window / dt / peak if dt > 0 and peak > 0 else 0.0,
                           "micro_batch_split": runner.split, **memory_metrics(device)}
                    tok_window, flops_window = 0, 0.0
                    log_metrics(rec)
                if val_enc and (step % cfg.eval_steps == 0 or step == total_steps):
                    eval_loss = validation_loss(model, val_enc, cfg, tok.pad_token_id, device, world, loss_fn)
                    log_metrics({"step": step, "eval_loss": eval_loss, "eval_perplexity": math.exp(min(eval_loss, 50))})
                if step % cfg.save_steps == 0 or step == total_steps:
                    checkpoint(step, stream.position())
                if step == kill_after:
                    world.barrier()  # every rank's checkpoint work is done before any process dies
                    os.kill(os.getpid(), signal.SIGKILL)
                if tok_window == 0:  # a window was just logged: time the next one from here, without eval/save
                    t_window = time.perf_counter()
        except KeyboardInterrupt:
            # Weights are those of the last completed step; resuming replays the interrupted one.
            optimizer.zero_grad(set_to_none=True)
            if step and not states.collective:  # gathering shards needs every rank, which Ctrl-C stops
                checkpoint(step, position, every_rank=False)
                log.warning("interrupted: saved checkpoint-%d; resume with --resume_from_checkpoint latest", step)
            if sink is not None:
                sink.close()
            raise
    if states.collective:
        weights, _ = states.gather(model, optimizer)
        if world.is_main:  # export from a whole, unsharded copy: the base weights are reloaded, trained ones set
            model = build_model(cfg, torch.device("cpu"), amp)
            load_trainable_state(model, weights, out)
    if not world.is_main:
        return TrainResult(out, step, last_loss, eval_loss)
    assert sink is not None
    sink.close()
    export_run(out, model, tok, cfg, step)
    atomic_write_json(out / "manifest.json", {
        "status": "finished", "steps": step, "final_loss": last_loss, "final_eval_loss": eval_loss,
        "train_examples": len(train_enc), "val_examples": len(val_enc), "world_size": world.size,
        "global_batch": global_batch, "config": cfg.model_dump(),
        "data_manifest_sha256": _data_manifest_hash(cfg), "metrics": _final_metrics(out),
        "precision": precision.record(), "optimizer": optimizer_name(optimizer),
        "versions": _versions(),
    })
    return TrainResult(out, step, last_loss, eval_loss)


def _data_manifest_hash(cfg: SFTConfig) -> str | None:
    """The sha256 of the prepared data's manifest.json, tying the run to the exact data it saw."""
    import hashlib

    path = Path(cfg.train_file).parent / "manifest.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _final_metrics(out: Path) -> dict[str, Any]:
    """The last value of every metric in metrics.jsonl."""
    last: dict[str, Any] = {}
    for ln in (out / "metrics.jsonl").read_text().splitlines():
        if ln.strip():
            last.update(json.loads(ln))
    return last


def _versions() -> dict[str, str]:
    import peft
    import transformers

    import curiosity_sft

    return {"curiosity_sft": curiosity_sft.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}
