"""What ``evaluate`` scores: the held-out examples of a prepared or raw file, never training data by accident.

A prepared ``val.jsonl``/``test.jsonl`` is held out. A raw file is read with ``prepare``'s own
readers, and its examples are held out when ``prepare`` would hold them out: a file named
``test*``/``*_test``/``val*``/``dev*``, or the ``test/`` members of a MATH archive. Everything
else (``logic_puzzles.jsonl``, ``MATH_train.tar.gz``'s train members, ``gsm8k/train.jsonl``) is
what ``prepare`` trains on; scoring it needs ``--split train`` or ``--split all``, so a number
from training data is never mistaken for a held-out one, and an archive's splits are never mixed
unless asked.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Literal

from curiosity_sft.data.records import BadRecords
from curiosity_sft.data.schema import Example, iter_jsonl, read_examples
from curiosity_sft.data.sources import detect_format, read_source
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError

Split = Literal["held-out", "train", "all"]
SPLITS: tuple[str, ...] = ("held-out", "train", "all")
HELD_OUT_WORDS = ("test", "val", "valid", "validation", "dev")


def name_split(path: Path) -> str:
    """``held-out`` when the file's name (or its folder's) says test/val/dev, ``train`` otherwise."""
    words = [w for part in (path.parent.name, path.name.split(".")[0]) for w in re.split(r"[-_.\s]+", part.lower())]
    return "held-out" if any(w in HELD_OUT_WORDS or w.startswith("test") for w in words) else "train"


def is_prepared(p: Path) -> bool:
    """A file ``prepare`` wrote: records carry our ``source`` label next to ``messages``/``text``."""
    for _, first in iter_jsonl(p):
        return isinstance(first, dict) and "source" in first and ("messages" in first or "text" in first)
    return False


def read_with_splits(path: str | Path) -> list[tuple[str, Example]]:
    """Every example of ``path`` with its split (``held-out`` or ``train``), read as ``prepare`` reads it."""
    p = Path(path)
    if not p.is_file():
        raise DataError("evaluation data file not found", where=p, fix="pass a prepared val.jsonl or a raw test file")
    fmt = detect_format(p)
    if fmt == "generic" and is_prepared(p):
        split = "train" if p.name.split(".")[0].lower().startswith("train") else "held-out"
        return [(split, ex) for ex in read_examples(p)]
    file_split = name_split(p)
    out = []
    for member, ex in read_source(p, fmt, SourceOptions(), BadRecords()):
        # a reader names the split only where the file holds several (MATH archive members)
        split = file_split if member is None else ("held-out" if member == "test" else "train")
        out.append((split, ex))
    if not out:
        raise DataError("no examples in file", where=p)
    return out


def load_eval_data(path: str | Path, split: str = "held-out") -> list[Example]:
    """The examples of ``path`` in ``split``; a file with none there is a one-line error saying why."""
    if split not in SPLITS:
        raise DataError(f"unknown split `{split}`", where="--split", fix=f"choose from {', '.join(SPLITS)}")
    rows = read_with_splits(path)
    picked = [ex for s, ex in rows if split == "all" or s == split]
    if not picked:
        have = sorted({s for s, _ in rows})
        if split == "held-out":
            raise DataError(f"no held-out examples: this is training data ({len(rows)} examples training "
                            "uses: a prepared train.jsonl, or a raw file that is not a test/val split)", where=path,
                            fix="evaluate the prepared val.jsonl/test.jsonl, or pass --split train (or all) to "
                                "score training examples on purpose")
        raise DataError(f"no `{split}` examples in file (it holds: {', '.join(have)})", where=path)
    return picked


def subset(examples: list[Example], limit: int | None, seed: int = 0) -> list[Example]:
    """A deterministic subset: the same ``limit`` always picks the same examples, kept in file order."""
    if limit is None or limit >= len(examples):
        return examples
    picked = sorted(range(len(examples)), key=lambda i: random.Random(f"{seed}:{examples[i].id}").random())[:limit]
    return [examples[i] for i in sorted(picked)]
