"""Logic puzzles: reasoning-gym JSONL (``task``/``question``/``answer``/``metadata``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from curiosity_sft.data.schema import Example, chat, iter_jsonl, stable_id
from curiosity_sft.errors import DataError


def matches(rec: dict) -> bool:
    return "task" in rec and "question" in rec and "answer" in rec


def difficulty(rec: dict) -> float | None:
    """Puzzle size from its generator parameters, scaled to [0, 1] within the task's usual range."""
    p = rec.get("params") or {}
    if "n_people" in p:
        return min(1.0, max(0.0, (p["n_people"] - 2) / 3))
    if "num_people" in p:
        return min(1.0, max(0.0, (p["num_people"] * p.get("num_characteristics", p["num_people"]) - 9) / 7))
    return None


def read(path: Path) -> Iterator[Example]:
    for line, rec in iter_jsonl(path):
        q, a = rec.get("question"), rec.get("answer")
        meta = rec.get("metadata") or {}
        # Propositional-logic puzzles have many valid conclusions: reasoning-gym leaves `answer`
        # null and gives one in metadata.example_answer. Train on it; it is not a unique key to score by.
        unique = a is not None
        if a is None:
            a = meta.get("example_answer")
        if not isinstance(q, str) or not isinstance(a, str | int | float):
            raise DataError("logic record needs a string `question` and an `answer`", where=path, line=line)
        task = str(rec.get("task", "logic"))
        yield Example(id=stable_id("logic", q), source="logic", messages=chat(q.strip(), str(a).strip()),
                      answer=str(a).strip() if unique else None, difficulty=difficulty(rec), meta={"task": task})
