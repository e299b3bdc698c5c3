"""Writing an evaluation folder whole or not at all, marked as ours.

Everything goes into a staging folder beside ``--output`` and is moved into place at the end
(``io.staging_dir`` / ``io.publish_dir``), so a crash or Ctrl-C mid-way leaves the previous
output (or nothing), never a ``results.json`` without its samples. The ``manifest.json`` names
the command (``io.ownership``), which is how a later ``--overwrite`` knows the folder is ours.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curiosity_sft.data.schema import write_jsonl
from curiosity_sft.io import atomic_write_json, ownership, publish_dir, staging_dir


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_evaluation_folder(final: Path, command: str, results: dict[str, Any], samples: list[dict[str, Any]],
                            extra: Callable[[Path], None] | None = None) -> None:
    """``results.json``, ``samples.jsonl`` (+ whatever ``extra`` writes) and ``manifest.json`` into ``final``."""
    tmp = staging_dir(final)
    try:
        write_jsonl(tmp / "samples.jsonl", samples)
        atomic_write_json(tmp / "results.json", results)
        if extra is not None:
            extra(tmp)
        files = sorted(p.name for p in tmp.iterdir())
        atomic_write_json(tmp / "manifest.json", {
            **ownership(command), "files": [*files, "manifest.json"],
            **{k: results.get(k) for k in ("model", "model_sha256", "data", "data_sha256", "samples", "samples_sha256")
               if k in results}})
        publish_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
