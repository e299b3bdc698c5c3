"""The embedded demo data: raw files in the real datasets' own formats, generated from a seed.

The project cannot ship GSM8K, MATH or Gutenberg books, but the demo and the tests must run
offline. Writing *raw* files (not prepared ones) means the demo goes through exactly the
readers real data goes through, so it exercises ``prepare`` instead of bypassing it. Everything
is derived from ``seed`` with private ``random.Random`` instances and written atomically, so the
same seed gives byte-identical files on every machine.
"""

from __future__ import annotations

import json
import os
import random
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curiosity_sft.data.synthetic.gsm8k import gsm8k_problem
from curiosity_sft.data.synthetic.logic import knights_knaves_puzzle
from curiosity_sft.data.synthetic.math import math_problem
from curiosity_sft.data.synthetic.stories import STORIES
from curiosity_sft.errors import UserError

__all__ = ["BOOKS", "STORIES", "book_text", "gsm8k_problem", "knights_knaves_puzzle", "math_problem",
           "write_raw_dataset"]

# File stem -> number of consecutive STORIES it binds, in order.
BOOKS = (("the_lantern_tales", 12), ("stories_from_willow_lane", 12), ("the_sky_and_sea_book", 12))
_ROMAN = (("M", 1000), ("CM", 900), ("D", 500), ("CD", 400), ("C", 100), ("XC", 90), ("L", 50),
          ("XL", 40), ("X", 10), ("IX", 9), ("V", 5), ("IV", 4), ("I", 1))
_MAX_TRIES_PER_ITEM = 50


def _roman(n: int) -> str:
    out = ""
    for sym, val in _ROMAN:
        while n >= val:
            out, n = out + sym, n - val
    return out


def book_text(stories: tuple[tuple[str, str], ...]) -> str:
    """Stories as Gutenberg chapter text: ``CHAPTER I. Title`` headings, 72-column lines, CRLF.

    Real Gutenberg files are hard-wrapped with CRLF line ends and several blank lines between
    chapters; copying that layout keeps the book reader honest about what it must handle.
    """
    chapters = []
    for i, (title, text) in enumerate(stories, start=1):
        paras = [textwrap.fill(" ".join(p.split()), width=72, break_long_words=False, break_on_hyphens=False)
                 for p in text.split("\n\n")]
        chapters.append(f"CHAPTER {_roman(i)}. {title}\n\n" + "\n\n".join(paras) + "\n")
    return "\n\n\n\n".join(chapters).replace("\n", "\r\n")


def _unique(make: Callable[[random.Random], dict[str, Any]], rng: random.Random, n: int, key: str,
            taken: set[str]) -> list[dict[str, Any]]:
    """``n`` records whose ``key`` text is new to ``taken`` (which grows), so splits never overlap."""
    out: list[dict[str, Any]] = []
    for _ in range(n * _MAX_TRIES_PER_ITEM):
        if len(out) == n:
            break
        rec = make(rng)
        if rec[key] not in taken:
            taken.add(rec[key])
            out.append(rec)
    if len(out) < n:
        raise UserError(f"the demo generators ran out of distinct {key}s after {len(out)} of {n}",
                        fix="ask for fewer demo examples")
    return out


def _logic_records(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Grouped by people count with ``source_index`` restarting per group, as reasoning-gym exports are."""
    sizes = (2, 3, 4)
    records: list[dict[str, Any]] = []
    taken: set[str] = set()
    for g, people in enumerate(sizes):
        count = n // len(sizes) + (1 if g < n % len(sizes) else 0)
        group = _unique(lambda r, p=people: knights_knaves_puzzle(r, p), rng, count, "question", taken)
        for i, rec in enumerate(group):
            rec["metadata"]["source_index"] = i
        records += group
    return records


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def write_raw_dataset(out_dir: Path, seed: int = 0, n_gsm8k: int = 400, n_math: int = 200, n_logic: int = 200,
                      n_test: int = 50) -> dict[str, int]:
    """Write the demo's raw GSM8K, MATH, logic-puzzle and book files under ``out_dir``.

    Returns records (chapters for books) per file, keyed by the path relative to ``out_dir``.
    Each file draws from its own seeded stream, so changing one count leaves the other files as
    they were.
    """
    out_dir = Path(out_dir)

    def rng(name: str) -> random.Random:
        return random.Random(f"{seed}:{name}")

    files: dict[str, list[dict[str, Any]]] = {}
    for name, make, key, n_train in (("gsm8k", gsm8k_problem, "question", n_gsm8k),
                                     ("math", math_problem, "problem", n_math)):
        seen: set[str] = set()
        files[f"{name}/train.jsonl"] = _unique(make, rng(f"{name}/train"), n_train, key, seen)
        files[f"{name}/test.jsonl"] = _unique(make, rng(f"{name}/test"), n_test, key, seen)
    files["logic_puzzles/logic_puzzles.jsonl"] = _logic_records(rng("logic_puzzles"), n_logic)

    counts: dict[str, int] = {}
    for rel, records in files.items():
        _write_bytes(out_dir / rel, _jsonl(records))
        counts[rel] = len(records)
    start = 0
    for stem, size in BOOKS:
        rel = f"children_books/{stem}.txt"
        _write_bytes(out_dir / rel, book_text(STORIES[start:start + size]).encode("utf-8"))
        counts[rel] = size
        start += size
    return dict(sorted(counts.items()))
