"""The training recipe: ``setup()`` builds everything, ``fit()`` is the loop, readable top to bottom.

We own the loop rather than use ``transformers.Trainer`` because exact resume (data position and
every RNG), loss normalised over the tokens of the whole optimizer step, packing without
cross-attention, skipping the vocabulary head on untrained positions and stopping on a signal at
a step boundary all need control of the step. Models, LoRA, schedules and TensorBoard come from
their libraries; how processes meet is one ``Parallelism`` object (distributed.py), so the loop
has no branch on the launcher.

Order of a run: pre-flight checks (config + launcher + hardware, nothing loaded), the output
folder checked and locked, data tokenized, fingerprinted and rated for the curriculum, the folder
marked as this run's, weights loaded, the parallelism object wraps them, the optimizer, the
curriculum sampler (``curriculum.strategy``: which examples each step trains on), schedule and
stream are built, a checkpoint's training state is put back whole, then ``fit`` runs until the
last step or a signal.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import get_scheduler

from curiosity_sft.chat_template import ChatTemplate
from curiosity_sft.config import SFTConfig, save_config
from curiosity_sft.curriculum import CurriculumData, build_sampler, curriculum_data, describe
from curiosity_sft.curriculum.samplers import saved_state
from curiosity_sft.data.schema import Example, read_examples
from curiosity_sft.errors import UserError
from curiosity_sft.models import (
    apply_lora,
    count_parameters,
    load_model,
    load_quantized_model,
)
from curiosity_sft.training.batching import Encoded, encode_file, training_template
from curiosity_sft.training.checkpoint import (
    TrainingState,
    find_checkpoint,
    load_trainable_state,
    rng_state,
    set_rng_state,
)
from curiosity_sft.training.distributed import (
    Launch,
    World,
    accumulation_for,
    make_parallelism,
    make_world,
)
from curiosity_sft.training.export import export_run
from curiosity_sft.training.fingerprint import check_fingerprint, data_fingerprint
from curiosity_sft.training.kernels import apply_liger, compile_layers
from curiosity_sft.training.loss import backbone_and_head
from curiosity_sft.training.optimizer import build_optimizer, optimizer_name, regroup
from curiosity_sft.training.precision import PrecisionChoice, choose_precision, pick_device, weight_dtype
from curiosity_sft.training.preflight import Hardware, preflight
from curiosity_sft.training.run_folder import RunFolder, run_record
from curiosity_sft.training.signals import StopSignals
from curiosity_sft.training.step import TokenLoss
from curiosity_sft.training.stream import StepStream
from curiosity_sft.training.telemetry import (
    MetricsSink,
    MetricsWindow,
    memory_metrics,
    model_flops,
    peak_flops,
)
from curiosity_sft.training.validation import validation_loss

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
    stopped_by: str | None = None  # the signal that stopped the run at a step boundary
    checkpoint: Path | None = None  # the checkpoint it stopped with
    is_main: bool = True


def train(cfg: SFTConfig, output_dir: str | Path, resume_from: str | None = None, overwrite: bool = False,
          show_progress: bool = True, keep_global_batch: bool = False, force_resume: bool = False) -> TrainResult:
    """Fine-tune ``cfg.model_name`` on ``cfg.train_file`` into ``output_dir``.

    Launched by ``torchrun``/``accelerate launch``, every process runs this; only rank 0 writes.
    ``keep_global_batch`` rescales accumulation on resume so the checkpoint's global batch holds
    on a different number of processes; ``force_resume`` resumes even though the data plan changed.
    """
    out = Path(output_dir)
    world = make_world(pick_device(cfg))
    launch = Launch.from_env()
    with StopSignals() as signals:
        folder = RunFolder(out, resume=resume_from is not None, overwrite=overwrite,
                           inputs=[p for p in (cfg.train_file, cfg.val_file) if p]) if world.is_main else None
        hardware = Hardware.detect(cfg)
        # One precision for every rank, measured once (a CPU's matmul probe) on rank 0, not once per process.
        precision = world.from_main(lambda: choose_precision(cfg, world.device, bf16_supported=hardware.bf16
                                                             if hardware.device == "cuda" else None))
        checks = preflight(cfg, launch, hardware, precision=precision)

        def check() -> None:
            checks.raise_first_failure()
            if folder is not None:
                folder.check()

        world.agree(check)  # every rank stops here, in seconds, if any rank would fail
        for warning in checks.warnings():
            log.warning("%s", warning)
        with folder if folder is not None else contextlib.nullcontext():
            recipe = Recipe(cfg, out, world, launch, precision, checks.deepspeed_config, folder, signals)
            recipe.setup(resume_from, keep_global_batch, force_resume)
            result = recipe.fit(show_progress and world.is_main)
    world.barrier()
    return result


def build_model(cfg: SFTConfig, device: torch.device, amp: torch.dtype | None, *, on_meta: bool = False,
                to_device: bool = True) -> torch.nn.Module:
    """Fresh, pretrained or 4-bit base, with gradient checkpointing and LoRA as configured.

    ``on_meta`` builds the architecture without reading weights (FSDP ranks that receive their
    shards from rank 0); ``to_device=False`` leaves it in CPU RAM for a wrapper that moves only
    its shards.
    """
    if cfg.load_in_4bit:
        model = load_quantized_model(cfg.model_name, amp or torch.bfloat16, cfg.gradient_checkpointing,
                                     attn_implementation=cfg.attn_implementation)
    else:
        with torch.device("meta") if on_meta else contextlib.nullcontext():
            model = load_model(cfg.model_name, hidden_dim=cfg.hidden_dim, num_layers=cfg.num_layers,
                               seed=cfg.seed, dtype=weight_dtype(cfg, amp), weights=not on_meta,
                               attn_implementation=cfg.attn_implementation)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if cfg.peft_enable:
                model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need grads
    if cfg.use_liger:
        apply_liger(model)
    if cfg.peft_enable:
        with torch.device("meta") if on_meta else contextlib.nullcontext():
            model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    if not cfg.load_in_4bit and to_device and not on_meta:
        model.to(device)
    if cfg.compile:
        log.info("torch.compile: %d decoder layers", compile_layers(backbone_and_head(model)[0]))
    model.train()
    return model


def with_launcher_settings(cfg: SFTConfig, launch: Launch) -> SFTConfig:
    """The launcher config's training settings folded into the config that is saved with the run:
    ``fsdp_activation_checkpointing`` is gradient checkpointing (recomputing each decoder layer)."""
    if launch.fsdp.activation_checkpointing and not cfg.gradient_checkpointing:
        log.info("fsdp_activation_checkpointing from the launcher config: gradient checkpointing on")
        return cfg.model_copy(update={"gradient_checkpointing": True})
    return cfg


def _processes(n: int) -> str:
    return f"{n} process" if n == 1 else f"{n} processes"


def _load_split(path: str | None, chat: ChatTemplate, cfg: SFTConfig, what: str) -> list[Encoded]:
    """One prepared split rendered by the training template (the pre-flight checks found the file)."""
    if path is None:
        return []
    return encode_file(path, chat, cfg.max_length, cfg.reasoning_format, what).kept


def _load_train(chat: ChatTemplate, cfg: SFTConfig) -> tuple[list[Encoded], list[Example]]:
    """The training sequences and, aligned with them, the Example each came from (its source and
    difficulty, which the curriculum samplers need and ``Encoded`` does not carry)."""
    enc = encode_file(cfg.train_file, chat, cfg.max_length, cfg.reasoning_format, "train").kept
    by_id = {e.id: e for e in read_examples(cfg.train_file)}
    return enc, [by_id[e.example_id] for e in enc]


def _resume_batch(cfg: SFTConfig, state: TrainingState, world: World, keep: bool) -> SFTConfig:
    """The config to continue with when the checkpoint was written by a different number of processes."""
    saved = state.global_batch or cfg.global_batch_size
    if keep and saved != cfg.global_batch_size * world.size:
        accum = accumulation_for(saved, cfg.batch_size, world.size)
        log.info("--keep-global-batch: accumulation %d -> %d to keep the global batch of %d on %s",
                 cfg.gradient_accumulation_steps, accum, saved, _processes(world.size))
        return cfg.model_copy(update={"gradient_accumulation_steps": accum})
    return cfg


class Recipe:
    """One run: ``setup`` then ``fit``. Rank 0 alone holds ``folder`` and writes."""

    def __init__(self, cfg: SFTConfig, out: Path, world: World, launch: Launch, precision: PrecisionChoice,
                 deepspeed_config: dict[str, Any] | None, folder: RunFolder | None, signals: StopSignals) -> None:
        self.cfg, self.out, self.world, self.launch = cfg, out, world, launch
        self.precision, self.amp = precision, precision.dtype
        self.deepspeed_config, self.folder, self.signals = deepspeed_config, folder, signals
        self.device = world.device

    # ---------------------------------------------------------------- setup
    def setup(self, resume_from: str | None, keep_global_batch: bool, force_resume: bool) -> None:
        """Everything ``fit`` needs, in the order a run meets it: the checkpoint's record, the data,
        the folder marked as this run's, the weights, the parallelism object around them, the
        optimizer, stream, schedule and step runner, and last the record put back."""
        torch.manual_seed(self.cfg.seed)
        state = self._read_checkpoint(resume_from, keep_global_batch)
        cfg, world = self.cfg, self.world
        log.info("precision: %s", self.precision.describe())
        # The template is probed and its round trip checked before any weights load.
        self.chat = training_template(cfg.model_name, cfg.chat_template)
        self.tok = self.chat.tok
        # Tokenize, fingerprint and rate difficulty once on rank 0 and broadcast, not once per process.
        self.train_enc, self.val_enc, self.fingerprint, curriculum = world.from_main(self._read_data)
        if state is not None:
            world.agree(lambda: check_fingerprint(state.fingerprint, self.fingerprint, self.ckpt, force_resume))
        cfg = self.cfg = with_launcher_settings(cfg, self.launch)
        if self.folder is not None:
            self.folder.start(cfg.model_dump())
            save_config(cfg, self.out / "config.yaml")

        self.par = make_parallelism(self.launch, world, self.deepspeed_config)
        model = self.model = build_model(cfg, self.device, self.amp, on_meta=self.par.loads_on_meta,
                                         to_device=not self.launch.shards_parameters)
        trainable, total = count_parameters(model)
        log.info("model %s: %s trainable of %s parameters (%s, %s)", cfg.model_name, f"{trainable:,}", f"{total:,}",
                 "QLoRA" if cfg.load_in_4bit else "LoRA" if cfg.peft_enable else "full", self.amp or torch.float32)
        self.base_config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
        if state is not None and not self.par.loads_on_meta:  # whole weights into the plain model, before any
            load_trainable_state(model, state.weights, self.ckpt)  # wrapper splits it (FSDP: rank 0 sends them)
        self.par.prepare(TokenLoss(model), backbone_and_head(model)[0].layers)
        # Created after sharding: FSDP2 replaces the parameters with sharded ones.
        self.optimizer = build_optimizer(model, cfg.learning_rate, cfg.weight_decay)
        log.info("optimizer: %s", optimizer_name(self.optimizer))
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]

        # The curriculum sampler decides every step's rows (docs/CURRICULUM.md); every process builds
        # the same one from the broadcast data, so all draw the same plan and take disjoint shares.
        self.global_batch = cfg.global_batch_size * world.size
        self.sampler = build_sampler(cfg, curriculum, self.global_batch)
        if state is not None:  # a changed global batch re-plans the rest of a `random` epoch, with a warning
            self.sampler.load_state_dict(saved_state(state.sampler, state.position, state.global_batch or
                                                     self.global_batch, state.step, curriculum),
                                         check_data=not force_resume)
        if world.is_main:
            log.info("%s", describe(self.sampler, cfg.curriculum.difficulty))
        self.stream = StepStream(self.train_enc, self.sampler, cfg.batch_size, self.tok.pad_token_id,
                                 rank=world.rank, size=world.size)
        self.par.attach(self.optimizer, self.stream.filler())
        self.total_steps = self.sampler.total_steps
        self.scheduler = get_scheduler(cfg.lr_scheduler if cfg.lr_scheduler != "constant" else "constant_with_warmup",
                                       self.optimizer, num_warmup_steps=int(cfg.warmup_ratio * self.total_steps),
                                       num_training_steps=self.total_steps)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp == torch.float16 else None
        self.runner = self.par.step_runner(model, self.optimizer, self.params, self.amp, self.scaler, cfg.max_grad_norm)
        self.step = 0
        if state is not None:
            self._restore(state)
        log.info("data parallelism: %s", self.par.describe())
        log.info("training %d steps: global batch %d = micro-batch %d x accumulation %d x %s, %d examples, packing %s",
                 self.total_steps, self.global_batch, cfg.batch_size, cfg.gradient_accumulation_steps,
                 _processes(world.size), len(self.train_enc), cfg.packing)

    def _read_checkpoint(self, resume_from: str | None, keep_global_batch: bool) -> TrainingState | None:
        if resume_from is None:
            return None
        self.ckpt = find_checkpoint(resume_from, self.out)
        state = TrainingState.load(self.ckpt)
        self.cfg = _resume_batch(self.cfg, state, self.world, keep_global_batch)
        return state

    def _read_data(self) -> tuple[list[Encoded], list[Encoded], dict[str, Any], CurriculumData]:
        """Rank 0's part: the encoded splits, their fingerprint and what the sampler knows of each
        training sequence (``curriculum.difficulty: model`` scores them with a model, once, cached)."""
        cfg = self.cfg
        train_enc, examples = _load_train(self.chat, cfg)
        curriculum = curriculum_data(cfg, train_enc, examples, self.tok.pad_token_id, self.device,
                                     show_progress=self.world.is_main)
        return (train_enc, _load_split(cfg.val_file, self.chat, cfg, "validation"), data_fingerprint(cfg, self.tok),
                curriculum)

    def _restore(self, state: TrainingState) -> None:
        """The checkpoint's training state, put back whole; the RNG last, so nothing after it draws."""
        optimizer_state = state.optimizer
        if len(optimizer_state["param_groups"]) != len(self.optimizer.param_groups):  # before the decay groups
            order = state.optimizer_order or [n for n, p in self.model.named_parameters() if p.requires_grad]
            optimizer_state = regroup(optimizer_state, order, self.optimizer, self.model)
        self.par.restore_optimizer(self.optimizer, optimizer_state)
        self.scheduler.load_state_dict(state.scheduler)
        if self.scaler is not None and state.scaler is not None:
            self.scaler.load_state_dict(state.scaler)
        elif self.scaler is not None:
            log.warning("%s has no fp16 loss scale (saved without fp16): starting from the default scale", self.ckpt)
        self.runner.split = state.micro_batch_split
        self.step = state.step
        set_rng_state(state.rng_for(self.world.rank, self.world.size))
        log.info("resumed from %s at step %d", self.ckpt, self.step)

    # ---------------------------------------------------------------- fit
    def fit(self, show_progress: bool) -> TrainResult:
        """Steps until the last one, or until a signal: then a checkpoint of the step just finished."""
        cfg, world, par = self.cfg, self.world, self.par
        sink = MetricsSink(self.out, self.step) if world.is_main else None
        # MFU against the rate of the precision trained in (on CPU the probe's measurement), not always fp32's
        rates = self.precision.rates
        peak = peak_flops(self.device, cfg.peak_tflops, rates.rate_of(self.amp) if rates is not None else None)
        lengths = [len(e.input_ids) for e in self.train_enc]
        context = sum(n * n for n in lengths) / max(1, sum(lengths))
        kill_after = int(os.environ.get(KILL_ENV, "0"))
        last_loss: float | None = None
        eval_loss: float | None = None
        bad_in_row = 0
        window = MetricsWindow()
        self.signals.start_training()  # from here a signal waits for the step boundary
        try:
            with _progress(show_progress) as progress:
                task = progress.add_task("train", total=self.total_steps, completed=self.step, info="")
                while self.step < self.total_steps:
                    if self.sampler.wants_probe(self.step):  # after step's checkpoint: a resume measures again
                        window.leave_out(self._probe())
                    batch = self.stream.next(self.step)
                    r = self.runner.run(batch.micro, batch.n_trained, shares=batch.shares, filler=batch.filler)
                    window.add(batch.n_real, model_flops(self.base_config, context, batch.n_real, batch.n_trained,
                                                         frozen_base=cfg.peft_enable))
                    saved = False
                    if r.applied:
                        bad_in_row = 0
                        self.sampler.observe_train(self.step, r.loss)  # the global batch's loss, as every rank has it
                        self.scheduler.step()
                        self.step += 1
                        last_loss = r.loss
                        if self.folder is not None:
                            self.folder.trained()
                        progress.update(task, completed=self.step, info=f"loss {r.loss:.4f}")
                        if self.step % cfg.logging_steps == 0 or self.step == self.total_steps:
                            _log(sink, {"step": self.step, "epoch": round(self.sampler.epoch_progress(), 4),
                                        "loss": r.loss, "learning_rate": self.scheduler.get_last_lr()[0],
                                        "grad_norm": r.grad_norm, **window.metrics(peak, world.size),
                                        "micro_batch_split": self.runner.split, **memory_metrics(self.device),
                                        **self.sampler.metrics()})
                        if self.val_enc and (self.step % cfg.eval_steps == 0 or self.step == self.total_steps):
                            eval_loss = validation_loss(self.model, self.val_enc, cfg, self.tok.pad_token_id,
                                                        self.device, world, par.forward)
                            _log(sink, {"step": self.step, "eval_loss": eval_loss,
                                        "eval_perplexity": math.exp(min(eval_loss, 50))})
                        if self.step % cfg.save_steps == 0 or self.step == self.total_steps:
                            self.save()
                            saved = True
                        if self.step == kill_after:
                            world.barrier()  # every rank's checkpoint work is done before any process dies
                            os.kill(os.getpid(), signal.SIGKILL)
                        window.restart_if_logged()  # time the next window from here, without eval/save
                    elif r.scale_overflow:
                        log.info("step %d: fp16 gradient overflow, loss scale lowered, step skipped", self.step + 1)
                    else:
                        bad_in_row += 1
                        log.warning("step %d: non-finite loss/gradient (%s / %s), step skipped", self.step + 1, r.loss,
                                    r.grad_norm)
                        _log(sink, {"step": self.step + 1, "skipped_nonfinite": bad_in_row})
                        if bad_in_row >= cfg.max_nonfinite_steps:
                            raise UserError(f"{bad_in_row} non-finite steps in a row at step {self.step + 1}",
                                            where=self.out, fix="lower learning_rate or use bf16/fp32; the last "
                                            "checkpoint is intact (resume with --resume_from_checkpoint latest)")
                    # The step boundary: every rank learns whether any was asked to stop, so all stop here.
                    if par.any(self.signals.requested):
                        return self._stopped(saved, last_loss, eval_loss)
        finally:
            if sink is not None:
                sink.close()
        return self._finish(last_loss, eval_loss)

    def _probe(self) -> float:
        """The curiosity sampler's feedback: every bucket's held-out loss on the current weights,
        all-reduced like the validation loss, so every process updates its bandit identically.
        Returns the seconds it took (left out of the throughput window)."""
        t0 = time.perf_counter()
        pad = self.tok.pad_token_id
        losses = {name: validation_loss(self.model, [self.train_enc[i] for i in idx], self.cfg, pad, self.device,
                                        self.world, self.par.forward)
                  for name, idx in self.sampler.probe_sets().items()}
        self.sampler.observe(self.step, losses)
        return time.perf_counter() - t0

    def save(self) -> Path | None:
        """A checkpoint of the step just finished: the data position is where the next step starts.

        Every process's RNG stream is gathered (a collective); shards are gathered to rank 0 by
        the parallelism object (a collective for FSDP and ZeRO), which alone writes.
        """
        rngs = self.world.gather(rng_state())
        weights, optimizer_state = self.par.gather_state(self.model, self.optimizer)
        if not self.world.is_main:
            return None
        state = TrainingState(
            step=self.step, position=self.sampler.position(), global_batch=self.global_batch,
            world_size=self.world.size, micro_batch_split=self.runner.split, total_steps=self.total_steps,
            weights=weights, optimizer=optimizer_state, scheduler=self.scheduler.state_dict(), rngs=rngs,
            scaler=self.scaler.state_dict() if self.scaler is not None else None, sampler=self.sampler.state_dict(),
            fingerprint=self.fingerprint, optimizer_order=self.par.optimizer_order(self.model, self.optimizer))
        return state.save(self.out, self.cfg, self.cfg.save_total_limit)

    def _stopped(self, saved: bool, last_loss: float | None, eval_loss: float | None) -> TrainResult:
        signame = self.signals.received or "a signal on another process"
        path = self.out / f"checkpoint-{self.step}"
        if self.step and not saved:
            self.save()
        if self.world.is_main:
            log.warning("%s: stopped at the end of step %d with checkpoint-%d", signame, self.step, self.step)
        return TrainResult(self.out, self.step, last_loss, eval_loss, stopped_by=signame,
                           checkpoint=path if self.step else None, is_main=self.world.is_main)

    def _finish(self, last_loss: float | None, eval_loss: float | None) -> TrainResult:
        model = self.model
        if self.par.collective:
            weights, _ = self.par.gather_state(model, self.optimizer)
            if self.world.is_main:  # export from a whole, unsharded copy: the base weights are reloaded, trained ones set
                model = build_model(self.cfg, torch.device("cpu"), self.amp)
                load_trainable_state(model, weights, self.out)
        result = TrainResult(self.out, self.step, last_loss, eval_loss, is_main=self.world.is_main)
        if self.folder is None:
            return result
        export_run(self.out, model, self.tok, self.cfg, self.step)
        self.folder.finish({
            "steps": self.step, "final_loss": last_loss, "final_eval_loss": eval_loss,
            "train_examples": len(self.train_enc), "val_examples": len(self.val_enc), "world_size": self.world.size,
            "global_batch": self.global_batch, "config": self.cfg.model_dump(), "data_fingerprint": self.fingerprint,
            "precision": self.precision.record(), "optimizer": optimizer_name(self.optimizer),
            **run_record(self.cfg, self.out)})
        return result


def _log(sink: MetricsSink | None, rec: dict[str, Any]) -> None:
    if sink is not None:
        sink.log(rec)


def _progress(show: bool) -> Progress:
    return Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    disable=not show, transient=False)
