"""The conventions TRL users already have: ``messages``, ``prompt``/``completion``, alpaca, ``text``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from curiosity_sft.data.schema import Example, chat, example_from_dict, iter_jsonl, stable_id
from curiosity_sft.errors import DataError


def matches(rec: dict) -> bool:
    return any(k in rec for k in ("messages", "text", "completion", "output")) or ("question" in rec and "answer" in rec)


def to_example(rec: dict, where: Path, line: int, source: str) -> Example:
    if "messages" in rec or "text" in rec:
        return example_from_dict({"source": source, **rec, "id": rec.get("id") or stable_id(source, json.dumps(rec, sort_keys=True))}, str(where), line)
    if "completion" in rec:
        user, reply = rec.get("prompt"), rec.get("completion")
    elif "output" in rec:
        user = "\n\n".join(x for x in (rec.get("instruction"), rec.get("input")) if x)
        reply = rec.get("output")
    else:
        user, reply = rec.get("question"), rec.get("answer")
    if not isinstance(user, str) or not isinstance(reply, str) or not user.strip():
        raise DataError("record needs non-empty string prompt and response fields", where=where, line=line)
    return Example(id=stable_id(source, user, reply), source=source, messages=chat(user.strip(), reply.strip()),
                   answer=rec.get("final_answer") if isinstance(rec.get("final_answer"), str) else None)


def read(path: Path) -> Iterator[Example]:
    source = path.stem.lower()
    for line, rec in iter_jsonl(path):
        if not isinstance(rec, dict):
            raise DataError("expected a JSON object", where=path, line=line)
        yield to_example(rec, path, line, source)
