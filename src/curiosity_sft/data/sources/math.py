"""MATH: the original release (``MATH/{train,test}/<subject>/<n>.json``, folder or tar) and JSONL exports.

The answer is the last ``\\boxed{...}`` (or ``\\fbox{...}``) in the solution, read with brace
matching because answers nest braces (``\\boxed{\\frac{1}{2}}``).
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from curiosity_sft.data.schema import Example, chat, iter_jsonl, stable_id
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


def to_example(rec: dict, where: str | Path, line: int | None) -> Example:
    problem = rec.get("problem")
    solution = rec.get("solution")
    if not isinstance(problem, str) or not isinstance(solution, str | type(None)):
        raise DataError("MATH record needs a string `problem` and `solution`", where=where, line=line)
    answer = rec.get("answer") if isinstance(rec.get("answer"), str) else None
    answer = answer or (last_boxed(solution) if solution else None)
    if answer is None:
        raise DataError("MATH solution has no \\boxed{} answer", where=where, line=line)
    if not solution:
        solution = f"The answer is $\\boxed{{{answer}}}$."
    level = str(rec.get("level", ""))
    lvl = int(level.split()[-1]) if level.split() and level.split()[-1].isdigit() else None
    return Example(id=stable_id("math", problem), source="math", messages=chat(problem.strip(), solution.strip()),
                   answer=answer, difficulty=None if lvl is None else (lvl - 1) / 4,
                   meta={"level": level, "type": rec.get("type", rec.get("subject", ""))})


def read_jsonl(path: Path) -> Iterator[Example]:
    for line, rec in iter_jsonl(path):
        yield to_example(rec, path, line)


def read_archive(path: Path) -> Iterator[Example]:
    """Read ``MATH/<split>/<subject>/<n>.json`` members; refuse absolute or ``..`` member paths."""
    try:
        tar = tarfile.open(path)
    except (tarfile.TarError, OSError) as e:
        raise DataError(f"not a readable tar archive ({e})", where=path) from None
    records = []
    with tar:
        # Stream members in archive order: seeking back in a .tar.gz re-decompresses from the start.
        for m in tar:
            if not (m.isfile() and m.name.endswith(".json")):
                continue
            p = PurePosixPath(m.name)
            if p.is_absolute() or ".." in p.parts:
                raise DataError(f"archive member `{m.name}` escapes the archive", where=path,
                                fix="refusing a hostile archive; re-create it with relative paths")
            if "test" in p.parts:  # official test problems are for evaluation, never training
                continue
            f = tar.extractfile(m)
            assert f is not None
            try:
                records.append((m.name, json.loads(f.read().decode("utf-8"))))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise DataError(f"bad JSON in member {m.name} ({e})", where=path) from None
    for name, rec in sorted(records, key=lambda r: r[0]):
        yield to_example(rec, f"{path}:{name}", None)
