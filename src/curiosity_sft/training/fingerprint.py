"""What planned a run's data, fingerprinted in every checkpoint so a resume cannot silently re-plan it.

A checkpoint's data position (epoch, step index) means something only in the plan that made it:
the same examples (train file, tokenizer with its chat template and ``reasoning_format``, which
decide every token and which examples fit ``max_length``), cut the same way (``max_length``, ``packing``,
``group_by_length``) and shuffled the same way (``seed``). Change any of them and the same
position points at other examples: some would be trained twice, others never, without a word.
So each is recorded, and a resume that differs stops with one line naming what changed, unless
the user forces it (``--force-resume``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from curiosity_sft.config import SFTConfig
from curiosity_sft.errors import UserError

log = logging.getLogger(__name__)

FORCE_FLAG = "--force-resume"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tokenizer_sha256(tok: PreTrainedTokenizerBase) -> str:
    """The vocabulary, merges, normalisation and chat template: everything that turns text into ids."""
    backend = getattr(tok, "backend_tokenizer", None)
    body = backend.to_str() if backend is not None else json.dumps(sorted(tok.get_vocab().items()))
    extra = json.dumps({"chat_template": tok.chat_template, "special": tok.special_tokens_map}, sort_keys=True,
                       default=str)
    return hashlib.sha256((body + extra).encode()).hexdigest()


def data_fingerprint(cfg: SFTConfig, tok: PreTrainedTokenizerBase) -> dict[str, Any]:
    return {"train_file_sha256": file_sha256(cfg.train_file), "tokenizer_sha256": tokenizer_sha256(tok),
            "reasoning_format": cfg.reasoning_format, "max_length": cfg.max_length, "packing": cfg.packing,
            "group_by_length": cfg.group_by_length, "seed": cfg.seed,
            # the sampler's settings plan the steps too (its own state refuses other data or another strategy)
            "curriculum": cfg.curriculum.model_dump(mode="json")}


def _differences(key: str, old: Any, new: Any) -> list[str]:
    """``key old -> new``, or for a section (``curriculum``) each changed ``key.sub old -> new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [f"{key}.{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)]
    return [NAMES.get(key, f"{key} {old!r} -> {new!r}")]


NAMES = {"train_file_sha256": "the train file's content", "tokenizer_sha256": "the tokenizer or its chat template"}


def check_fingerprint(saved: dict[str, Any], now: dict[str, Any], where: Path, force: bool) -> None:
    """Refuse a resume whose data plan differs from the checkpoint's, naming every difference."""
    if not saved:
        log.warning("%s has no data fingerprint (written by an older version): cannot check that the data, "
                    "max_length, packing, seed, reasoning format and tokenizer are unchanged", where)
        return
    changed = []
    for key, value in now.items():
        if key in saved and saved[key] != value:
            changed += _differences(key, saved[key], value)
    if not changed:
        return
    what = "; ".join(changed)
    if force:
        log.warning("resuming on a changed data plan (%s, %s): the checkpoint's position now points at other "
                    "examples, so some of this epoch's may be repeated or skipped", what, FORCE_FLAG)
        return
    raise UserError(f"the data plan changed since this checkpoint ({what}); resuming would train on other examples "
                    "than the interrupted run", where=where,
                    fix=f"resume with the checkpoint's settings, start a new run, or pass {FORCE_FLAG} to continue "
                        "from its position in the new plan")
