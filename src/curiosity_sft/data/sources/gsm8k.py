"""GSM8K: ``{"question", "answer"}`` with ``<<48/2=24>>`` calculator notes and a final ``#### N``.

The calculator notes are how the dataset's authors checked arithmetic, not how anyone writes a
solution, so they are stripped by default; the number after ``####`` is the verifiable answer.
Difficulty is the number of solution steps (one per line), 1 step -> 0, 8 or more -> 1.
"""

from __future__ import annotations

import re

from curiosity_sft.data.schema import Example, chat, stable_id
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError

CALC = re.compile(r"<<[^<>]*>>")
FINAL = re.compile(r"####\s*(.+?)\s*$")


def matches(rec: dict) -> bool:
    return isinstance(rec.get("answer"), str) and "question" in rec and "####" in rec["answer"]


def final_answer(solution: str) -> str | None:
    """The text after ``####``, with thousands separators removed (GSM8K writes 1,000 sometimes)."""
    m = FINAL.search(solution.strip())
    return m.group(1).replace(",", "").strip() if m else None


def to_examples(rec: dict, where: str, line: int | None, opts: SourceOptions) -> list[Example]:
    q, a = rec.get("question"), rec.get("answer")
    if not isinstance(q, str) or not isinstance(a, str):
        missing = "question" if not isinstance(q, str) else "answer"
        raise DataError(f"GSM8K record needs a string `{missing}`", where=where, line=line)
    final = final_answer(a)
    if final is None:
        raise DataError("GSM8K answer has no `#### <number>` line", where=where, line=line)
    body = CALC.sub("", a) if opts.strip_calculator else a
    steps = len([ln for ln in a.strip().splitlines()[:-1] if ln.strip()])
    source = opts.source_name or "gsm8k"
    return [Example(id=stable_id(source, q), source=source, messages=chat(q.strip(), body.strip()), answer=final,
                    difficulty=min(1.0, max(0.0, (steps - 1) / 7)), meta={"task": "gsm8k", "steps": steps})]
