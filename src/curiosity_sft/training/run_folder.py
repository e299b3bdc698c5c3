"""The run folder's life: refused or claimed before any work, marked as ours from the start, old
runs cleared only when asked, and nothing left behind by a run that never trained.

``manifest.json`` is written with ``ownership("train")`` when the run starts (``status:
running``) and rewritten at the end (``status: finished``), so a folder a run was killed in is
recognisable as ours: ``io.written_by`` names it, and a later fresh run into it is refused (it
holds checkpoints worth resuming) unless ``--overwrite`` is given. ``--overwrite`` removes this
program's own outputs of the old run (``checkpoint-*``, ``latest.pt``, exports, logs) before the
new run writes any, so checkpoint pruning (which keeps the highest step numbers) and ``latest``
can never pick the old run's checkpoints; any other file in the folder is left alone, and a folder
that is not ours is never emptied (``io.check_output_dir``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curiosity_sft.config import SFTConfig
from curiosity_sft.errors import UserError
from curiosity_sft.io import MANIFEST, atomic_write_json, check_output_dir, ownership, written_by
from curiosity_sft.training.checkpoint import TMP_RE, RunLock, list_checkpoints, remove_stale_temporaries

# Everything a training run writes at the top of its folder (checkpoint-N and temporaries by pattern).
OUTPUTS = ("manifest.json", "config.yaml", "metrics.jsonl", "latest.pt", ".latest.pt.tmp", "hf_model", "adapter",
           "tokenizer", "runs")
LOCK = ".lock"


def _ours(name: str) -> bool:
    return (name in OUTPUTS or name == LOCK or TMP_RE.match(name) is not None
            or any(name.startswith(f".{o}.") for o in ("hf_model", "adapter", "tokenizer", "manifest.json",
                                                         "config.yaml")))


def read_manifest(out: Path) -> dict[str, Any]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RunFolder:
    """Rank 0's handle on ``--output``: ``check`` before anything loads, then used as a context
    manager that holds the lock; ``start`` once the inputs are known good; ``trained`` after the
    first step; ``finish`` at the end."""

    def __init__(self, out: Path, *, resume: bool, overwrite: bool, inputs: Sequence[str | Path] = ()) -> None:
        self.out, self.resume, self.overwrite, self.inputs = out, resume, overwrite, list(inputs)
        self.has_trained = False
        self._before: set[str] = set()
        self._made_dir = False

    def check(self) -> None:
        """Refuse, before any work, a folder this run may not write into.

        The rule is ``io.check_output_dir``'s, the one every command follows (whose folder it is
        comes from ``io.written_by``); training adds what its long-lived folder needs: a resume
        continues in its own folder, an earlier run is refused with the message that fits it
        (finished, or interrupted with checkpoints to resume), and a folder of ours that never
        saved a checkpoint holds nothing to lose, so it is replaced without ``--overwrite``.
        """
        out = self.out
        ours = written_by(out) == "train"
        if self.resume and (ours or list_checkpoints(out) or not out.exists() or self._empty()):
            return
        if ours and not self.resume and not self.overwrite:
            ckpts = list_checkpoints(out)
            if read_manifest(out).get("status") == "finished":
                raise UserError("this folder holds a finished run of `curiosity-sft train`", where=out,
                                fix="pass --overwrite to replace it, --resume_from_checkpoint latest to train it "
                                    "further, or choose another --output")
            if ckpts:
                raise UserError(f"this folder holds an interrupted run of `curiosity-sft train` ({ckpts[-1].name})",
                                where=out,
                                fix="resume it with --resume_from_checkpoint latest, pass --overwrite to start over, "
                                    "or choose another --output")
        if self._empty():
            return
        # the same guards as every command (a file, the current folder, a folder holding an input)
        check_output_dir(out, "train", overwrite=self.overwrite or ours, inputs=self.inputs)

    def _empty(self) -> bool:
        """No entries, or only the lock file a run of an older version left behind."""
        return self.out.is_dir() and all(p.name == LOCK for p in self.out.iterdir())

    def __enter__(self) -> RunFolder:
        self._made_dir = not self.out.exists()
        self._before = {p.name for p in self.out.iterdir()} if self.out.is_dir() else set()
        self._lock = RunLock(self.out)
        self._lock.__enter__()
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._lock.__exit__()
        if exc_type is not None and not self.has_trained:
            self._undo()

    def start(self, cfg_dump: dict[str, Any]) -> None:
        """The inputs are good: clear an old run if this is a fresh start, and mark the folder ours."""
        remove_stale_temporaries(self.out)
        previous = read_manifest(self.out)
        if not self.resume:
            self._clear_old_run()
            previous = {}
        atomic_write_json(self.out / MANIFEST, {**ownership("train"), "status": "running",
                                                "started": previous.get("started", _now()), "config": cfg_dump})

    def _clear_old_run(self) -> None:
        """This program's outputs of an earlier run, and nothing else."""
        for p in self.out.iterdir():
            if p.name == LOCK or not (_ours(p.name) or p in list_checkpoints(self.out)):
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()

    def trained(self) -> None:
        self.has_trained = True

    def finish(self, fields: dict[str, Any]) -> None:
        previous = read_manifest(self.out)
        atomic_write_json(self.out / MANIFEST, {**ownership("train"), "status": "finished",
                                                "started": previous.get("started"), "finished": _now(), **fields})

    def _undo(self) -> None:
        """A run that stops before its first step takes back what it created: a new folder is removed
        again, an existing one keeps everything it held before (the lock file included)."""
        if not self.out.is_dir():
            return
        for p in self.out.iterdir():
            if p.name in self._before or not _ours(p.name):
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        if self._made_dir and not any(self.out.iterdir()):
            self.out.rmdir()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_record(cfg: SFTConfig, out: Path) -> dict[str, Any]:
    """What the final manifest adds to a run's own figures: the data it saw, its metrics, the versions."""
    return {"data_manifest_sha256": _data_manifest_hash(cfg), "metrics": _final_metrics(out), "versions": _versions()}


def _data_manifest_hash(cfg: SFTConfig) -> str | None:
    """The sha256 of the prepared data's manifest.json, tying the run to the exact data it saw."""
    path = Path(cfg.train_file).parent / "manifest.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _final_metrics(out: Path) -> dict[str, Any]:
    """The last value of every metric in metrics.jsonl."""
    last: dict[str, Any] = {}
    path = out / "metrics.jsonl"
    for ln in path.read_text().splitlines() if path.is_file() else []:
        if ln.strip():
            last.update(json.loads(ln))
    return last


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    import curiosity_sft

    return {"curiosity_sft": curiosity_sft.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}
