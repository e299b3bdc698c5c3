"""One reader per raw format; each turns a file into ``Example``s and knows how to recognise it.

``detect_reader`` looks at a file's name and first record so users can point ``prepare`` at a
folder of mixed files without saying what each one is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from curiosity_sft.data.schema import Example, iter_jsonl
from curiosity_sft.data.sources import books, generic, gsm8k, logic, math
from curiosity_sft.errors import DataError

Reader = Callable[[Path], Iterator[Example]]

# Order matters: the first reader whose ``matches`` accepts the first record wins.
JSONL_READERS: list[tuple[str, Callable[[dict], bool], Reader]] = [
    ("gsm8k", gsm8k.matches, gsm8k.read),
    ("math", math.matches, math.read_jsonl),
    ("logic", logic.matches, logic.read),
    ("generic", generic.matches, generic.read),
]


def detect_reader(path: Path) -> tuple[str, Reader]:
    """(format name, reader) for one file, or a DataError saying why it is not recognised."""
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "math", math.read_archive
    if path.suffix.lower() == ".txt":
        return "books", books.read
    if path.suffix.lower() in (".jsonl", ".json"):
        for _, first in iter_jsonl(path):
            if not isinstance(first, dict):
                raise DataError("expected one JSON object per line", where=path, line=1)
            for fmt, matches, reader in JSONL_READERS:
                if matches(first):
                    return fmt, reader
            raise DataError(f"unrecognised record with keys {sorted(first)[:8]}", where=path, line=1,
                            fix="use messages, prompt/completion, instruction/output, text, question/answer or problem/solution")
        raise DataError("empty file", where=path)
    raise DataError(f"unsupported file type `{path.suffix}`", where=path, fix="use .jsonl, .txt or a MATH .tar.gz")


def is_data_file(path: Path) -> bool:
    n = path.name.lower()
    return path.is_file() and not n.startswith(".") and (
        n.endswith((".jsonl", ".json", ".txt", ".tar.gz", ".tgz", ".tar")) and n not in ("license.txt", "readme.txt"))
