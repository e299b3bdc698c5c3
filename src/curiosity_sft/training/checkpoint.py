"""Checkpoints that resume exactly and are never half-written; the run folder's lock.

A checkpoint is written into a hidden temporary folder and renamed to ``checkpoint-N`` only once
every file is on disk, so any ``checkpoint-N`` that exists is complete and ``latest`` (the highest
N) always points at a complete one. It holds the trainable weights (safetensors), optimizer,
scheduler, every RNG state and the data position: enough to continue bit-for-bit on CPU.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from curiosity_sft.config import SFTConfig, save_config
from curiosity_sft.errors import UserError
from curiosity_sft.io import atomic_write_json, publish_dir

CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only what training changes: LoRA adapters for LoRA, everything for a full fine-tune."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str | Path) -> None:
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    unknown = [n for n in state if n not in params]
    if missing or unknown:
        raise UserError(f"weights do not match the model ({len(missing)} missing, {len(unknown)} unexpected, "
                        f"e.g. {(missing or unknown)[0]})", where=where,
                        fix="resume with the same config (model_name, peft_enable, lora_r, hidden_dim, num_layers)")
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))


def rng_state() -> dict[str, Any]:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def save_checkpoint(out_dir: Path, step: int, weights: dict[str, torch.Tensor], optimizer_state: dict[str, Any],
                    scheduler: Any, state: dict[str, Any], cfg: SFTConfig, keep: int | None,
                    rngs: list[dict[str, Any]] | None = None) -> Path:
    """Write ``checkpoint-<step>`` atomically, then prune to the newest ``keep``.

    ``weights`` and ``optimizer_state`` are whole (gathered from shards if training was sharded),
    in ``torch.optim`` index-keyed form, so a checkpoint does not depend on how many processes
    wrote it. ``rngs`` holds every process's RNG state (default: this process's): each process
    draws its own dropout masks, so only its own stream resumes it exactly.
    """
    final = out_dir / f"checkpoint-{step}"
    tmp = out_dir / f".checkpoint-{step}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(weights, str(tmp / "model.safetensors"))
    torch.save(optimizer_state, tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rngs or [rng_state()], tmp / "rng.pt")
    save_config(cfg, tmp / "config.yaml")
    atomic_write_json(tmp / "trainer_state.json", {"step": step, **state})
    publish_dir(tmp, final)
    if keep is not None:
        for old in list_checkpoints(out_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders are hidden and never match)."""
    if not out_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out_dir.iterdir() if (m := CKPT_RE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def find_checkpoint(spec: str, out_dir: Path) -> Path:
    """``latest`` -> the newest complete checkpoint in ``out_dir``; otherwise a path to one."""
    if spec == "latest":
        found = list_checkpoints(out_dir)
        if not found:
            raise UserError("no checkpoint to resume from", where=out_dir,
                            fix="start without --resume_from_checkpoint, or point it at a checkpoint-N folder")
        return found[-1]
    p = Path(spec)
    if not (p / "trainer_state.json").is_file():
        raise UserError("not a checkpoint folder (no trainer_state.json)", where=p,
                        fix="pass a checkpoint-N folder written by `curiosity-sft train`, or `latest`")
    return p


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's trainable weights, whole; loaded into the model before any wrapper shards it."""
    return load_file(str(path / "model.safetensors"))


def load_checkpoint(path: Path, scheduler: Any, rank: int = 0, world_size: int = 1) -> dict[str, Any]:
    """Restore the scheduler and every RNG; return the optimizer state for the caller to place.

    A process takes its own RNG stream when the checkpoint was written by as many processes;
    on another process count the micro-batches move between processes anyway, and all take
    process 0's.
    """
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
    rngs = torch.load(path / "rng.pt", weights_only=False)
    rngs = [rngs] if isinstance(rngs, dict) else rngs  # checkpoints before per-process streams
    set_rng_state(rngs[rank] if len(rngs) == world_size else rngs[0])
    return torch.load(path / "optimizer.pt", weights_only=True)


class RunLock:
    """An exclusive lock on a run folder, so two runs never write into the same one.

    ``flock`` is released by the kernel when the process dies, even by SIGKILL, so a crashed run
    never leaves a stale lock behind.
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError("another training run is using this output folder", where=self.path.parent,
                            fix="wait for it to finish or choose another --output") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
