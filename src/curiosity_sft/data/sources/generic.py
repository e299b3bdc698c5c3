"""The conventions TRL users already have: ``messages``, ``prompt``/``completion``, alpaca, ``text``,
and plain ``question``/``answer`` pairs, so anything else a user brings fits one of them.

The source name is the file's stem (or its folder's, for files called ``train``/``test``), or
the ``name`` a data config gives. A user's own ``id`` is kept in ``meta`` but not used as ours:
ids must be content hashes so duplicates are found and ids never collide across files.
"""

from __future__ import annotations

import json
from pathlib import Path

from curiosity_sft.data.schema import Example, chat, example_from_dict, stable_id
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError

SPLIT_STEMS = {"train", "test", "val", "valid", "validation", "dev", "data"}


def matches(rec: dict) -> bool:
    return any(k in rec for k in ("messages", "conversations", "text", "completion", "output")) or (
        "question" in rec and "answer" in rec)


def source_name(path: Path) -> str:
    stem = path.name.split(".")[0].lower()
    if stem.split("-")[0] in SPLIT_STEMS and path.parent.name:
        return path.parent.name.lower()
    return stem


def _sharegpt(turns: object, where: str, line: int | None) -> list[dict[str, str]]:
    """ShareGPT ``conversations`` (``from``/``value``) as OpenAI ``messages``."""
    roles = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
    if not isinstance(turns, list) or not all(isinstance(t, dict) and t.get("from") in roles for t in turns):
        raise DataError("`conversations` must be a list of {from: human|gpt|system, value: ...}", where=where, line=line)
    return [{"role": roles[t["from"]], "content": t.get("value")} for t in turns]


def _text(x: object, field: str, where: str, line: int | None) -> str:
    if isinstance(x, list) and all(isinstance(m, dict) for m in x):  # TRL conversational prompt/completion
        x = "\n\n".join(str(m.get("content", "")) for m in x)
    if not isinstance(x, str) or not x.strip():
        raise DataError(f"`{field}` must be a non-empty string", where=where, line=line)
    return x.strip()


def to_examples(rec: dict, where: str, line: int | None, opts: SourceOptions) -> list[Example]:
    source = opts.source_name or "generic"
    meta = {"original_id": str(rec["id"])} if rec.get("id") is not None else {}
    answer = rec.get("final_answer") if isinstance(rec.get("final_answer"), str) else None
    if "messages" in rec or "conversations" in rec or "text" in rec:
        body = dict(rec)
        if "conversations" in body and "messages" not in body:
            body["messages"] = _sharegpt(body.pop("conversations"), where, line)
        content = body.get("messages") if "messages" in body else body.get("text")
        ex = example_from_dict({"messages": body["messages"]} if "messages" in body else {"text": body["text"]},
                               where, line or 0)
        if ex.text is not None and not ex.text.strip():
            raise DataError("`text` is empty", where=where, line=line)
        ex.id = stable_id(source, json.dumps(content, sort_keys=True, ensure_ascii=False))
        ex.source, ex.answer, ex.meta = source, answer, meta
        return [ex]
    if "completion" in rec:
        user, reply = _text(rec.get("prompt"), "prompt", where, line), _text(rec["completion"], "completion", where, line)
    elif "output" in rec:
        user = "\n\n".join(_text(rec[k], k, where, line) for k in ("instruction", "input") if rec.get(k))
        if not user:
            raise DataError("alpaca record needs a non-empty `instruction`", where=where, line=line)
        reply = _text(rec["output"], "output", where, line)
    else:
        a = rec.get("answer")
        if isinstance(a, int | float) and not isinstance(a, bool):
            a = answer = str(a)
        user, reply = _text(rec.get("question"), "question", where, line), _text(a, "answer", where, line)
    return [Example(id=stable_id(source, user, reply), source=source, messages=chat(user, reply), answer=answer, meta=meta)]
