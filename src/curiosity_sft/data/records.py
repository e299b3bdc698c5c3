"""Raw records out of JSONL, JSON and parquet files, and what to do with the bad ones.

Readers of every source go through ``iter_records`` so that a malformed line, non-UTF-8 bytes, an
empty or binary file are reported the same way everywhere: file, line, what is wrong. ``BadRecords``
is the ``--on-error`` policy: ``fail`` raises the first error (the CLI exits 2), ``skip`` counts it
per file and goes on, so one broken line in 100k does not cost a user the whole run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from curiosity_sft.data.schema import decode_json_line, is_blank
from curiosity_sft.errors import DataError

OnError = Literal["fail", "skip"]
SNIFF_BYTES = 8192


class BadRecords:
    """The ``--on-error`` policy, and the tally of what it skipped."""

    def __init__(self, on_error: OnError = "fail") -> None:
        self.on_error = on_error
        self.skipped: Counter[str] = Counter()
        self.first_errors: list[str] = []

    def handle(self, err: DataError, file: str) -> None:
        """Raise ``err`` (fail) or count it against ``file`` (skip)."""
        if self.on_error == "fail":
            raise err
        self.skipped[file] += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(err.one_line())

    @property
    def total(self) -> int:
        return sum(self.skipped.values())


def check_text_file(path: Path) -> bytes:
    """The file's bytes (without a UTF-8 byte-order mark, which Windows editors add), refusing
    empty and binary files before any parsing is attempted."""
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    if not data.strip():
        raise DataError("empty file", where=path, fix="remove it or fill it with records")
    if b"\x00" in data[:SNIFF_BYTES]:
        raise DataError("binary file, not text (NUL bytes)", where=path,
                        fix="pass JSONL, JSON, parquet, plain text or a MATH .tar.gz")
    return data


def parse_json_lines(data: bytes, where: str | Path, bad: BadRecords) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; bad lines go to ``bad``."""
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            obj = decode_json_line(raw, where, lineno)
            if is_blank(obj):
                continue
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}", where=where, line=lineno)
        except DataError as e:
            bad.handle(e, str(where))
            continue
        yield lineno, obj


def parse_json_document(data: bytes, where: str | Path, bad: BadRecords) -> Iterator[tuple[int, dict[str, Any]]]:
    """A ``.json`` file: one object (a MATH problem file), a list of objects, or JSON lines."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        yield from parse_json_lines(data, where, bad)
        return
    items = doc if isinstance(doc, list) else [doc]
    for i, obj in enumerate(items, start=1):
        if isinstance(obj, dict):
            yield i, obj
        else:
            bad.handle(DataError(f"expected a JSON object, got {type(obj).__name__}", where=where, line=i), str(where))


def read_parquet(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a parquet file (the Hugging Face export), numbered from 1 like lines."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several unrelated types for a corrupt file
        raise DataError(f"not a readable parquet file ({type(e).__name__}: {str(e)[:80]})", where=path) from None
    yield from enumerate(table.to_pylist(), start=1)


def iter_records(path: Path, bad: BadRecords) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row, record) from a JSONL, JSON or parquet file."""
    if path.suffix.lower() == ".parquet":
        yield from read_parquet(path)
        return
    data = check_text_file(path)
    if path.suffix.lower() == ".json":
        yield from parse_json_document(data, path, bad)
    else:
        yield from parse_json_lines(data, path, bad)
