"""GSM8K: ``{"question", "answer"}`` with ``<<48/2=24>>`` calculator notes and a final ``#### N``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from curiosity_sft.data.schema import Example, chat, iter_jsonl, stable_id
from curiosity_sft.errors import DataError

CALC = re.compile(r"<<[^<>]*>>")
FINAL = re.compile(r"####\s*(.+?)\s*$")


def matches(rec: dict) -> bool:
    return isinstance(rec.get("answer"), str) and "question" in rec and "####" in rec["answer"]


def final_answer(solution: str) -> str | None:
    """The text after ``####``, with thousands separators removed (GSM8K writes 1,000 sometimes)."""
    m = FINAL.search(solution.strip())
    return m.group(1).replace(",", "").strip() if m else None


def to_example(rec: dict, where: Path, line: int, strip_calculator: bool = True) -> Example:
    q, a = rec.get("question"), rec.get("answer")
    if not isinstance(q, str) or not isinstance(a, str):
        raise DataError("GSM8K record needs string `question` and `answer`", where=where, line=line)
    final = final_answer(a)
    if final is None:
        raise DataError("GSM8K answer has no `#### <number>` line", where=where, line=line)
    body = CALC.sub("", a) if strip_calculator else a
    steps = len([ln for ln in a.strip().splitlines()[:-1] if ln.strip()])
    return Example(id=stable_id("gsm8k", q), source="gsm8k", messages=chat(q.strip(), body.strip()), answer=final,
                   difficulty=min(1.0, max(0.0, (steps - 1) / 7)), meta={"steps": steps})


def read(path: Path) -> Iterator[Example]:
    for line, rec in iter_jsonl(path):
        yield to_example(rec, path, line)
