"""One converter per raw format; ``detect_format`` recognises a file, ``read_source`` reads it.

Detection looks at a file's name and its first record, so users can point ``prepare`` at a folder
of mixed files without saying what each one is; a data config can force the format when the
guess would be wrong. Every reader yields ``(split, Example)``: ``None`` means "the file's split"
(from its name); a MATH archive says per member, because it holds train and test together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from curiosity_sft.data.records import BadRecords, iter_records
from curiosity_sft.data.schema import Example
from curiosity_sft.data.sources import books, generic, gsm8k, logic, math, web
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError

Converter = Callable[[dict, str, int | None, SourceOptions], list[Example]]

# Order matters: the first format whose test accepts the first record wins.
RECORD_FORMATS: dict[str, tuple[Callable[[dict], bool], Converter]] = {
    "gsm8k": (gsm8k.matches, gsm8k.to_examples),
    "math": (math.matches, math.to_examples),
    "logic": (logic.matches, logic.to_examples),
    "logic_rl": (logic.matches_logic_rl, logic.logic_rl_to_examples),
    "generic": (generic.matches, generic.to_examples),
}
FORMATS = (*RECORD_FORMATS, "books", "web")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
RECORD_SUFFIXES = (".jsonl", ".json", ".parquet")
IGNORED_NAMES = ("license", "licence", "readme", "notice", "copying")


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def is_data_file(path: Path) -> bool:
    n = path.name.lower()
    return (path.is_file() and not n.startswith(".") and n.endswith((*RECORD_SUFFIXES, ".txt", *ARCHIVE_SUFFIXES))
            and not n.startswith(IGNORED_NAMES))


def detect_format(path: Path, bad: BadRecords | None = None) -> str:
    """The format name for one file, or a DataError saying why it is not recognised."""
    if path.is_dir():
        if web.is_web_folder(path):
            return "web"
        raise DataError("a folder that is not a `web ingest` output", where=path, fix="pass data files")
    if is_archive(path):
        return "math"
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return "books"
    if suffix not in RECORD_SUFFIXES:
        raise DataError(f"unsupported file type `{suffix}`", where=path,
                        fix="use .jsonl, .json, .parquet, .txt or a MATH .tar.gz")
    for line, first in iter_records(path, bad or BadRecords()):
        for fmt, (test, _) in RECORD_FORMATS.items():
            if test(first):
                return fmt
        raise DataError(f"unrecognised record with keys {sorted(first)[:8]}", where=path, line=line,
                        fix="use messages, prompt/completion, instruction/output, text, question/answer, "
                            "problem/solution or quiz/solution_text, or set `format` in a data config")
    raise DataError("no records in file", where=path)


def read_source(path: Path, fmt: str, opts: SourceOptions, bad: BadRecords) -> Iterator[tuple[str | None, Example]]:
    """Every example in ``path`` read as ``fmt``; bad records go through ``bad`` (fail or skip)."""
    if fmt == "math" and is_archive(path):
        yield from math.read_archive(path, opts, bad)
        return
    if fmt == "books":
        for ex in books.read(path, opts):
            yield None, ex
        return
    if fmt == "web":
        for ex in web.read(path, opts):
            yield None, ex
        return
    if fmt not in RECORD_FORMATS:
        raise DataError(f"unknown format `{fmt}`", where=path, fix=f"use one of {', '.join(FORMATS)}")
    if fmt == "generic" and opts.source_name is None:
        opts = SourceOptions(**{**vars(opts), "source_name": generic.source_name(path)})
    convert = RECORD_FORMATS[fmt][1]
    for line, rec in iter_records(path, bad):
        try:
            for ex in convert(rec, str(path), line, opts):
                yield None, ex
        except DataError as e:
            bad.handle(e, str(path))
