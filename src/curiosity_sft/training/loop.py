"""The training loop: plain PyTorch you can step through.

We own the loop rather than use ``transformers.Trainer`` because exact resume (data position and
every RNG), loss normalised over the tokens of the whole optimizer step, packing without
cross-attention and skipping the vocabulary head on untrained positions all need control of the
step. Models, LoRA, schedules and TensorBoard come from their libraries.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from transformers import get_scheduler

from curiosity_sft.config import SFTConfig, save_config
from curiosity_sft.data.schema import read_examples
from curiosity_sft.errors import UserError
from curiosity_sft.io import atomic_write_json
from curiosity_sft.models import apply_lora, count_parameters, load_model, load_tokenizer
from curiosity_sft.training.batching import Batch, Encoded, batches, encode_all, epoch_order, plan_epoch
from curiosity_sft.training.checkpoint import RunLock, find_checkpoint, load_checkpoint, save_checkpoint
from curiosity_sft.training.export import export_run
from curiosity_sft.training.loss import sum_token_loss

log = logging.getLogger(__name__)

MAX_BAD_STEPS = 5


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    final_loss: float | None
    final_eval_loss: float | None


def pick_device(cfg: SFTConfig) -> torch.device:
    if cfg.device != "auto":
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(cfg: SFTConfig, device: torch.device) -> torch.dtype | None:
    """Mixed precision only where the hardware has it; fp32 on CPU (no bf16 matmul units there)."""
    if device.type != "cuda":
        if cfg.fp16 or cfg.bf16:
            log.warning("fp16/bf16 requested but running on %s: training in fp32", device.type)
        return None
    if cfg.bf16 or (cfg.fp16 is False and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


class MicroBatchStream:
    """Micro-batches across epochs from a resumable position (epoch, index in that epoch's plan)."""

    def __init__(self, encoded: list[Encoded], cfg: SFTConfig, pad_id: int, epoch: int = 0, index: int = 0) -> None:
        self.encoded, self.cfg, self.pad_id = encoded, cfg, pad_id
        self.lengths = [len(e.input_ids) for e in encoded]
        self.epoch, self.index = epoch, index
        self._plan = self._plan_for(epoch)

    def _plan_for(self, epoch: int) -> list:
        order = epoch_order(len(self.encoded), self.cfg.seed, epoch)
        return plan_epoch(self.lengths, order, self.cfg.batch_size, self.cfg.packing, self.cfg.max_length,
                          seed=self.cfg.seed + epoch)

    @property
    def per_epoch(self) -> int:
        return len(self._plan)

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def __iter__(self) -> Iterator[Batch]:
        while True:
            if self.index >= len(self._plan):
                self.epoch, self.index = self.epoch + 1, 0
                self._plan = self._plan_for(self.epoch)
            mb = self._plan[self.index]
            self.index += 1
            yield next(batches(self.encoded, [mb], self.pad_id))


@torch.no_grad()
def validation_loss(model: torch.nn.Module, encoded: list[Encoded], cfg: SFTConfig, pad_id: int,
                    device: torch.device) -> float:
    """Mean loss per trained token over the validation set."""
    was_training = model.training
    model.eval()
    plan = plan_epoch([len(e.input_ids) for e in encoded], list(range(len(encoded))), cfg.eval_batch_size,
                      False, cfg.max_length)
    total, n = 0.0, 0
    for b in batches(encoded, plan, pad_id):
        s, k = sum_token_loss(model, b.to(device))
        total, n = total + float(s), n + k
    model.train(was_training)
    return total / max(n, 1)


def _load_split(path: str | None, tok: Any, cfg: SFTConfig, what: str) -> list[Encoded]:
    if path is None:
        return []
    if not Path(path).is_file():
        raise UserError(f"{what} file not found", where=path,
                        fix="run `curiosity-sft prepare` first or set train_file/val_file in the config")
    encoded, dropped = encode_all(read_examples(path), tok, cfg.max_length)
    if dropped:
        log.warning("%s: dropped %d examples longer than max_length=%d (never truncated)", path, dropped, cfg.max_length)
    if not encoded:
        raise UserError(f"every {what} example is longer than max_length={cfg.max_length}", where=path,
                        fix="raise max_length")
    return encoded


def _check_output(out: Path, resume: str | None, overwrite: bool) -> None:
    manifest = out / "manifest.json"
    if resume is None and manifest.is_file() and not overwrite:
        raise UserError("this folder holds a finished run", where=out,
                        fix="choose another --output, resume with --resume_from_checkpoint, or pass --overwrite")


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop logged lines past the checkpoint so the file tells one consistent history."""
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


def train(cfg: SFTConfig, output_dir: str | Path, resume_from: str | None = None, overwrite: bool = False,
          show_progress: bool = True) -> TrainResult:
    """Fine-tune ``cfg.model_name`` on ``cfg.train_file`` into ``output_dir``."""
    out = Path(output_dir)
    _check_output(out, resume_from, overwrite)
    with RunLock(out):
        return _train_locked(cfg, out, resume_from, show_progress)


def _train_locked(cfg: SFTConfig, out: Path, resume_from: str | None, show_progress: bool) -> TrainResult:
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(cfg.seed)
    device = pick_device(cfg)
    amp = autocast_dtype(cfg, device)
    tok = load_tokenizer(cfg.model_name)
    train_enc = _load_split(cfg.train_file, tok, cfg, "train")
    val_enc = _load_split(cfg.val_file, tok, cfg, "validation")

    model = load_model(cfg.model_name, hidden_dim=cfg.hidden_dim, num_layers=cfg.num_layers, seed=cfg.seed)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.peft_enable:
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target_modules)
    model.to(device)
    model.train()
    trainable, total = count_parameters(model)
    log.info("model %s: %s trainable of %s parameters (%s)", cfg.model_name, f"{trainable:,}", f"{total:,}",
             "LoRA" if cfg.peft_enable else "full")

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                  fused=device.type == "cuda", foreach=None if device.type == "cuda" else True)
    stream = MicroBatchStream(train_enc, cfg, tok.pad_token_id)
    accum = cfg.gradient_accumulation_steps
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * stream.per_epoch / accum))
    scheduler = get_scheduler(cfg.lr_scheduler if cfg.lr_scheduler != "constant" else "constant_with_warmup",
                              optimizer, num_warmup_steps=int(cfg.warmup_ratio * total_steps),
                              num_training_steps=total_steps)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None

    step = 0
    if resume_from is not None:
        ckpt = find_checkpoint(resume_from, out)
        state = load_checkpoint(ckpt, model, optimizer, scheduler)
        step = state["step"]
        stream = MicroBatchStream(train_enc, cfg, tok.pad_token_id, **state["position"])
        log.info("resumed from %s at step %d", ckpt, step)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    metrics_path = out / "metrics.jsonl"
    _truncate_metrics(metrics_path, step)
    writer = SummaryWriter(str(out / "runs"), purge_step=step + 1 if step else None)

    log.info("training %d steps: global batch %d = micro-batch %d x accumulation %d, %d examples, packing %s",
             total_steps, cfg.global_batch_size, cfg.batch_size, accum, len(train_enc), cfg.packing)
    it = iter(stream)
    last_loss: float | None = None
    eval_loss: float | None = None
    bad_in_row = 0
    t_window, tok_window = time.perf_counter(), 0
    progress = Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        disable=not show_progress, transient=False)

    def checkpoint(at: int, position: dict[str, int]) -> None:
        save_checkpoint(out, at, model, optimizer, scheduler, {"position": position, "total_steps": total_steps},
                        cfg, cfg.save_total_limit)

    with progress:
        task = progress.add_task("train", total=total_steps, completed=step, info="")
        try:
            while step < total_steps:
                position = stream.position()
                micro = [next(it) for _ in range(accum)]
                n_tokens = sum(b.n_trained for b in micro)
                step_loss = 0.0
                for b in micro:
                    b = b.to(device)
                    with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                        s, _ = sum_token_loss(model, b)
                    loss = s / max(n_tokens, 1)
                    (scaler.scale(loss) if scaler else loss).backward()
                    step_loss += float(loss.detach())
                    tok_window += b.n_real
                if scaler:
                    scaler.unscale_(optimizer)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
                if not (math.isfinite(step_loss) and math.isfinite(grad_norm)):
                    optimizer.zero_grad(set_to_none=True)
                    bad_in_row += 1
                    log.warning("step %d: non-finite loss/gradient (%s / %s), step skipped", step + 1, step_loss, grad_norm)
                    if bad_in_row >= MAX_BAD_STEPS:
                        raise UserError(f"{bad_in_row} non-finite steps in a row at step {step + 1}", where=out,
                                        fix="lower learning_rate or use bf16/fp32; the last checkpoint is intact")
                    if scaler:
                        scaler.update()
                    continue
                bad_in_row = 0
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                last_loss = step_loss
                progress.update(task, completed=step, info=f"loss {step_loss:.4f}")

                if step % cfg.logging_steps == 0 or step == total_steps:
                    dt = time.perf_counter() - t_window
                    rec = {"step": step, "epoch": round(position["epoch"] + position["index"] / stream.per_epoch, 4),
                           "loss": step_loss, "learning_rate": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                           "tokens_per_second": tok_window / dt if dt > 0 else 0.0}
                    t_window, tok_window = time.perf_counter(), 0
                    _log_metrics(writer, metrics_path, rec)
                if val_enc and (step % cfg.eval_steps == 0 or step == total_steps):
                    eval_loss = validation_loss(model, val_enc, cfg, tok.pad_token_id, device)
                    _log_metrics(writer, metrics_path, {"step": step, "eval_loss": eval_loss,
                                                        "eval_perplexity": math.exp(min(eval_loss, 50))})
                if step % cfg.save_steps == 0 or step == total_steps:
                    checkpoint(step, stream.position())
        except KeyboardInterrupt:
            # Weights are those of the last completed step; resuming replays the interrupted one.
            optimizer.zero_grad(set_to_none=True)
            if step:
                checkpoint(step, position)
                log.warning("interrupted: saved checkpoint-%d; resume with --resume_from_checkpoint latest", step)
            writer.close()
            raise
    writer.close()
    export_run(out, model, tok, cfg, step)
    atomic_write_json(out / "manifest.json", {
        "status": "finished", "steps": step, "final_loss": last_loss, "final_eval_loss": eval_loss,
        "train_examples": len(train_enc), "val_examples": len(val_enc), "config": cfg.model_dump(),
        "versions": _versions(),
    })
    return TrainResult(out, step, last_loss, eval_loss)


def _log_metrics(writer: Any, path: Path, rec: dict[str, Any]) -> None:
    step = rec["step"]
    for k, v in rec.items():
        if k != "step":
            writer.add_scalar(k if k.startswith("eval") else f"train/{k}", v, step)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")


def _versions() -> dict[str, str]:
    import peft
    import transformers

    import curiosity_sft

    return {"curiosity_sft": curiosity_sft.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}
