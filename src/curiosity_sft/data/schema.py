"""The one record every stage after ``prepare`` reads: ``Example``, and its JSONL form.

Converters at the edge (``data/sources``) turn each raw format into this; everything downstream
(batching, evaluation) only knows this shape. It follows TRL's conventions (``messages`` for chat,
``text`` for plain language modelling) so users can bring files TRL users already have.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curiosity_sft.errors import DataError
from curiosity_sft.io import atomic_open

ROLES = ("system", "user", "assistant")


@dataclass
class Example:
    """One SFT example: either a chat (``messages``) or a plain text passage (``text``).

    ``answer`` is the verifiable final answer (GSM8K number, MATH boxed expression, puzzle
    solution) when the source has one; evaluation scores generations against it. ``difficulty``
    is in [0, 1] from the source's own signal, for curricula.
    """

    id: str
    source: str
    messages: list[dict[str, str]] | None = None  # role, content (+ reasoning_content)
    text: str | None = None
    answer: str | None = None
    difficulty: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.text is None):
            raise ValueError("an Example has exactly one of `messages` or `text`")

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """The conversation up to (not including) the last assistant turn: what a model is asked."""
        assert self.messages is not None
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return self.messages[:last]

    @property
    def reference(self) -> str:
        """The last assistant turn (chat) or the text itself: what generation is compared to."""
        if self.messages is not None:
            return [m for m in self.messages if m["role"] == "assistant"][-1]["content"]
        assert self.text is not None
        return self.text

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "source": self.source}
        if self.messages is not None:
            d["messages"] = self.messages
        else:
            d["text"] = self.text
        if self.answer is not None:
            d["answer"] = self.answer
        if self.difficulty is not None:
            d["difficulty"] = round(float(self.difficulty), 4)
        d["meta"] = self.meta
        return d


def stable_id(source: str, *parts: str) -> str:
    """A content hash, so the same example gets the same id on every machine and every run."""
    h = hashlib.sha256(source.encode())
    for p in parts:
        h.update(b"\x00" + p.encode())
    return f"{source}-{h.hexdigest()[:16]}"


def chat(user: str, assistant: str, system: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def _validate_messages(messages: Any, where: str, line: int) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise DataError("`messages` must be a non-empty list", where=where, line=line)
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise DataError(f"each message needs a role in {ROLES} and a string content, got {m!r:.80}",
                            where=where, line=line)
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError("`messages` has no assistant turn to train on", where=where, line=line)
    # `reasoning_content` (the Hugging Face field for a reply's reasoning) travels with its message.
    return [{"role": m["role"], "content": m["content"],
             **({"reasoning_content": m["reasoning_content"]} if isinstance(m.get("reasoning_content"), str) else {})}
            for m in messages]


def example_from_dict(d: Any, where: str = "<memory>", line: int = 0) -> Example:
    """Validate one prepared record; errors name the file and line."""
    if not isinstance(d, dict):
        raise DataError(f"expected a JSON object, got {type(d).__name__}", where=where, line=line)
    if "messages" not in d and "text" not in d:
        raise DataError("record has neither `messages` nor `text`", where=where, line=line,
                        fix="prepare raw files with `curiosity-sft prepare` first")
    messages = _validate_messages(d["messages"], where, line) if "messages" in d else None
    text = d.get("text")
    if messages is None and not isinstance(text, str):
        raise DataError("`text` must be a string", where=where, line=line)
    answer = d.get("answer")
    return Example(
        id=str(d.get("id") or stable_id(str(d.get("source", "unknown")), json.dumps(d, sort_keys=True))),
        source=str(d.get("source", "unknown")),
        messages=messages,
        text=text if messages is None else None,
        answer=None if answer is None else str(answer),
        difficulty=d.get("difficulty"),
        meta=d.get("meta") or {},
    )


_BLANK = object()


def decode_json_line(raw: bytes, where: str | Path, lineno: int) -> Any:
    """One JSON Lines line; ``_BLANK`` for a blank line, a DataError naming file and line otherwise."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte {e.start})", where=where, line=lineno) from None
    if not s.strip():
        return _BLANK
    try:
        return json.loads(s)
    except json.JSONDecodeError as e:
        raise DataError(f"malformed JSON ({e.msg} at column {e.colno})", where=where, line=lineno) from None


def is_blank(obj: Any) -> bool:
    return obj is _BLANK


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object); a bad line is a DataError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", where=path, fix="check the path or run `curiosity-sft prepare`")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            obj = decode_json_line(raw, path, lineno)
            if not is_blank(obj):
                yield lineno, obj


def read_examples(path: str | Path) -> list[Example]:
    """Read a prepared JSONL file into Examples; an empty file is an error, not zero examples."""
    out = [example_from_dict(obj, str(path), n) for n, obj in iter_jsonl(path)]
    if not out:
        raise DataError("no examples in file", where=path, fix="check that prepare produced data")
    return out


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a truncated file that looks whole."""
    with atomic_open(path) as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_examples(path: str | Path, examples: Iterable[Example]) -> None:
    write_jsonl(path, (e.to_dict() for e in examples))
