"""MATH: the original release (``MATH/{train,test}/<subject>/<n>.json``, folder or tar) and the
JSONL exports (Hugging Face: problem/level/type/solution; MATH-500: problem/solution/answer/level).

The answer is the last ``\\boxed{...}`` (or ``\\fbox{...}``) in the solution, read with brace
matching because answers nest braces (``\\boxed{\\frac{1}{2}}``). ``level`` 1..5 is the difficulty.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from curiosity_sft.data.records import BadRecords
from curiosity_sft.data.schema import DIFFICULTY_REASON, Example, chat, stable_id
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError


def matches(rec: dict) -> bool:
    return "problem" in rec and ("solution" in rec or "answer" in rec)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{}``/``\\fbox{}``, nested braces included; None if there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = start + (6 if text.startswith("\\boxed", start) else 5)
    if text.startswith(" ", i):  # `\boxed 2`: an unbraced single token, as a few MATH solutions write it
        rest = text[i:].strip()
        token = rest.split("$")[0].split()[0] if rest.split("$")[0].split() else ""
        return token.rstrip(".") or None
    if not text.startswith("{", i):
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip()
    return None


def level_number(level: object) -> int | None:
    """``"Level 3"`` (original, HF) or ``3`` (MATH-500) -> 3; ``"Level ?"`` -> None."""
    last = str(level).split()[-1] if str(level).split() else ""
    return int(last) if last.isdigit() and 1 <= int(last) <= 5 else None


def to_examples(rec: dict, where: str, line: int | None, opts: SourceOptions) -> list[Example]:
    problem, solution = rec.get("problem"), rec.get("solution")
    if not isinstance(problem, str) or not problem.strip():
        raise DataError("MATH record needs a non-empty string `problem`", where=where, line=line)
    if not isinstance(solution, str | None):
        raise DataError(f"MATH `solution` must be a string, got {type(solution).__name__}", where=where, line=line)
    given = rec.get("answer")
    answer = str(given) if isinstance(given, str | int | float) and str(given).strip() else None
    answer = answer or (last_boxed(solution) if solution else None)
    if answer is None:
        raise DataError("MATH solution has no \\boxed{} answer", where=where, line=line)
    if not solution:
        solution = f"The answer is $\\boxed{{{answer}}}$."
    lvl = level_number(rec.get("level", ""))
    source = opts.source_name or "math"
    why = {} if lvl is not None else {DIFFICULTY_REASON: f"no MATH level 1-5 (level {rec.get('level')!r})"}
    return [Example(id=stable_id(source, problem), source=source, messages=chat(problem.strip(), solution.strip()),
                    answer=answer, difficulty=None if lvl is None else (lvl - 1) / 4,
                    meta={"task": "math", "level": rec.get("level", ""), "type": rec.get("type", rec.get("subject", "")),
                          **why})]


def member_split(name: str) -> str:
    """``MATH/test/algebra/1.json`` -> ``test``: official test problems never enter training."""
    return "test" if "test" in PurePosixPath(name).parts else "train"


def read_archive(path: Path, opts: SourceOptions, bad: BadRecords) -> Iterator[tuple[str, Example]]:
    """(split, example) for each ``<split>/<subject>/<n>.json`` member, in member-name order.

    Members with absolute paths or ``..`` are refused outright (a hostile archive is not a bad
    record to skip). Nothing is extracted to disk: members are read in memory.
    """
    try:
        tar = tarfile.open(path)
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"not a readable tar archive ({e})", where=path) from None
    records: list[tuple[str, bytes]] = []
    with tar:
        try:
            # Stream members in archive order: seeking back in a .tar.gz re-decompresses from the start.
            for m in tar:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts or m.issym() or m.islnk():
                    raise DataError(f"archive member `{m.name}` is a link or escapes the archive", where=path,
                                    fix="refusing a hostile archive; re-create it with plain relative files")
                if m.isfile() and m.name.endswith(".json"):
                    f = tar.extractfile(m)
                    assert f is not None
                    records.append((m.name, f.read()))
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"truncated or corrupt tar archive ({e})", where=path) from None
    if not records:
        raise DataError("archive holds no MATH `.json` problem files", where=path)
    for name, raw in sorted(records):
        where = f"{path}:{name}"
        try:
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise DataError(f"bad JSON ({e})", where=where) from None
            if not isinstance(rec, dict):
                raise DataError("expected a JSON object", where=where)
            for ex in to_examples(rec, where, None, opts):
                yield member_split(name), ex
        except DataError as e:
            bad.handle(e, str(path))
