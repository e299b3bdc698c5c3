"""Checkpoints that resume exactly and are never half-written; the run folder's lock.

A checkpoint is one ``TrainingState`` record, written and read whole: the trainable weights
(safetensors), optimizer, scheduler, fp16 loss scaler, every process's RNG streams, the data
position with its sampler's state, and the fingerprints of what planned the data. It is written
into a hidden temporary folder and renamed to ``checkpoint-N`` only once every file is on disk,
so any ``checkpoint-N`` that exists is complete and ``latest`` (the highest N) always points at a
complete one; a save that fails leaves no temporary folder behind.

Every file loads with ``torch.load(weights_only=True)``: a checkpoint from someone else cannot run
code on load.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from curiosity_sft.config import SFTConfig, save_config
from curiosity_sft.errors import UserError
from curiosity_sft.io import atomic_write_json, publish_dir

CKPT_RE = re.compile(r"^checkpoint-(\d+)$")
TMP_RE = re.compile(r"^\.checkpoint-\d+\.tmp$")
FORMAT = 2  # 2: fingerprints, sampler state, loss scaler, RNG in weights_only form


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
    """This process's RNG streams in a form ``torch.load(weights_only=True)`` accepts (no numpy objects)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    st: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state(),
                          "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                                    "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any]) -> None:
    python = st["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    n = st["numpy"]
    if isinstance(n, dict):
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    else:  # checkpoints before format 2 kept numpy's own tuple
        np.random.set_state(n)
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _load_rngs(path: Path) -> list[dict[str, Any]]:
    """Format 2 loads as plain tensors; older files hold numpy arrays, allowed by name and nothing else."""
    try:
        rngs = torch.load(path, weights_only=True)
    except pickle.UnpicklingError:  # raised naming the global it refused
        core = getattr(np, "_core", None) or np.core
        safe = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
        with torch.serialization.safe_globals(safe):
            rngs = torch.load(path, weights_only=True)
    return [rngs] if isinstance(rngs, dict) else list(rngs)  # before per-process streams: one dict


@dataclass
class TrainingState:
    """Everything a run needs to continue exactly where it stopped, saved and restored as one record.

    ``weights`` and ``optimizer`` are whole (gathered from shards if training was sharded), the
    optimizer in ``torch.optim`` index-keyed form, so a checkpoint does not depend on how many
    processes wrote it. ``rngs`` holds every process's RNG streams: each process draws its own
    dropout masks, so only its own stream resumes it exactly. ``position`` is the data position
    (epoch, step index in it) *after* ``step``, the point the weights have reached.
    """

    step: int
    position: dict[str, int]
    global_batch: int
    world_size: int
    micro_batch_split: int
    total_steps: int
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rngs: list[dict[str, Any]]
    scaler: dict[str, Any] | None = None
    sampler: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    optimizer_order: list[str] = field(default_factory=list)  # parameter names, in the optimizer's index order
    format: int = FORMAT

    def meta(self) -> dict[str, Any]:
        return {"step": self.step, "position": self.position, "global_batch": self.global_batch,
                "world_size": self.world_size, "micro_batch_split": self.micro_batch_split,
                "total_steps": self.total_steps, "sampler": self.sampler, "fingerprint": self.fingerprint,
                "optimizer_order": self.optimizer_order, "format": self.format}

    def save(self, out_dir: Path, cfg: SFTConfig, keep: int | None) -> Path:
        """Write ``checkpoint-<step>`` atomically, then prune to the newest ``keep``."""
        final = out_dir / f"checkpoint-{self.step}"
        tmp = out_dir / f".checkpoint-{self.step}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            save_file(self.weights, str(tmp / "model.safetensors"))
            torch.save(self.optimizer, tmp / "optimizer.pt")
            torch.save(self.scheduler, tmp / "scheduler.pt")
            if self.scaler is not None:
                torch.save(self.scaler, tmp / "scaler.pt")
            torch.save(self.rngs, tmp / "rng.pt")
            save_config(cfg, tmp / "config.yaml")
            atomic_write_json(tmp / "trainer_state.json", self.meta())
            publish_dir(tmp, final)
        finally:
            if tmp.exists():  # a failed save (disk full, ...) leaves nothing behind
                shutil.rmtree(tmp, ignore_errors=True)
        if keep is not None:
            for old in list_checkpoints(out_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        return final

    @classmethod
    def load(cls, path: Path) -> TrainingState:
        import json

        meta = json.loads((path / "trainer_state.json").read_text())
        scaler = torch.load(path / "scaler.pt", weights_only=True) if (path / "scaler.pt").is_file() else None
        return cls(step=meta["step"], position=dict(meta["position"]),
                   global_batch=meta.get("global_batch", 0), world_size=meta.get("world_size", 1),
                   micro_batch_split=meta.get("micro_batch_split", 1), total_steps=meta.get("total_steps", 0),
                   weights=load_file(str(path / "model.safetensors")),
                   optimizer=torch.load(path / "optimizer.pt", weights_only=True),
                   scheduler=torch.load(path / "scheduler.pt", weights_only=True),
                   rngs=_load_rngs(path / "rng.pt"), scaler=scaler, sampler=meta.get("sampler", {}),
                   fingerprint=meta.get("fingerprint", {}), optimizer_order=meta.get("optimizer_order", []),
                   format=meta.get("format", 1))

    def rng_for(self, rank: int, world_size: int) -> dict[str, Any]:
        """A process takes its own RNG stream when the checkpoint was written by as many processes;
        on another process count the micro-batches move between processes anyway, and all take
        process 0's."""
        return self.rngs[rank] if len(self.rngs) == world_size else self.rngs[0]


def list_checkpoints(out_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders are hidden and never match)."""
    if not out_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out_dir.iterdir() if (m := CKPT_RE.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def remove_stale_temporaries(out_dir: Path) -> None:
    """``.checkpoint-N.tmp`` folders a killed save left (SIGKILL gives no chance to clean up)."""
    if out_dir.is_dir():
        for p in out_dir.iterdir():
            if TMP_RE.match(p.name) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


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
