"""Which files ``prepare`` reads, as what, and into which split.

An input is one file, or one folder of single-problem ``.json`` files (the original MATH layout,
``MATH/train/algebra/*.json``): a manifest listing 12,500 files would hide the ones that matter.
Official test splits (``test*.jsonl``, ``*_test.*``, anything under a ``test/`` folder, MATH
``test/`` archive members) go to ``test.jsonl`` and never enter training.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from curiosity_sft.data.data_config import DataConfig
from curiosity_sft.data.sources import is_data_file, web
from curiosity_sft.errors import DataError

TEST_WORDS = ("test",)


@dataclass
class Input:
    """A file (or a folder of ``.json`` problem files) with its format, source name and split."""

    label: str
    files: list[Path]
    format: str | None = None
    source: str | None = None
    split: str = "auto"
    sha256: str = field(default="", repr=False)


def is_test_path(rel: PurePath) -> bool:
    """``test.jsonl``, ``main_test.jsonl``, ``test-00000-of-00001.parquet``, ``MATH/test/x/1.json``."""
    stem = rel.name.split(".")[0].lower()
    parts = [p.lower() for p in rel.parts[:-1]]
    return stem.startswith("test") or any(w in stem.replace("-", "_").split("_") for w in TEST_WORDS) or "test" in parts


def sha256_files(files: list[Path], root: Path) -> str:
    """sha256 of a file, or of (name, content hash) pairs for a folder of files."""
    digests = []
    for p in files:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        digests.append((_label(p, root), h.hexdigest()))
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("\n".join(f"{n} {d}" for n, d in digests).encode()).hexdigest()


def _label(p: Path, root: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return p.as_posix()


def _expand(path: Path, skip: Path | None, webs: Sequence[Path] = ()) -> list[Path]:
    if path.is_file():
        return [path]
    skips = [s.resolve() for s in (skip, *webs) if s is not None]
    return sorted(p for p in path.rglob("*") if is_data_file(p) and not any(s in p.resolve().parents for s in skips))


def _group(files: list[Path], root: Path) -> list[tuple[str, list[Path]]]:
    """One entry per file, except folders of several ``.json`` files, which are one entry each."""
    json_dirs: dict[Path, list[Path]] = defaultdict(list)
    for p in files:
        if p.suffix.lower() == ".json":
            json_dirs[p.parent].append(p)
    out = []
    for p in files:
        group = json_dirs.get(p.parent) if p.suffix.lower() == ".json" else None
        if group is not None and len(group) > 1:
            if group[0] == p:
                out.append((_label(p.parent, root) + "/", group))
        else:
            out.append((_label(p, root), [p]))
    return out


def find_inputs(input_dir: Path, cfg: DataConfig, skip: Path | None = None) -> list[Input]:
    """Every input to read: what the data config lists, or every data file under ``input_dir``."""
    if not input_dir.exists():
        raise DataError("input folder not found", where=input_dir, fix="pass the folder holding your raw data to --input")
    root = input_dir if input_dir.is_dir() else input_dir.parent
    inputs: list[Input] = []
    if not cfg.sources:
        webs = web.roots_under(input_dir)
        for label, files in _group(_expand(input_dir, skip, webs), root):
            inputs.append(Input(label, files))
        inputs += [Input(_label(w, root) + "/", [w], "web") for w in webs]
    for spec in cfg.sources:
        for raw in spec.paths:
            path = Path(raw) if Path(raw).is_absolute() else root / raw
            if not path.exists():
                raise DataError(f"source `{spec.name}`: path not found", where=path,
                                fix="paths in a data config are relative to --input")
            if web.is_web_folder(path):  # a web-ingest output or snapshot is one input, read as a whole
                inputs.append(Input(_label(path, root) + "/", [path], spec.format or "web", spec.name, spec.split))
                continue
            webs = web.roots_under(path)
            for label, files in _group(_expand(path, skip, webs), root):
                inputs.append(Input(label, files, spec.format, spec.name, spec.split))
            inputs += [Input(_label(w, root) + "/", [w], "web", spec.name, spec.split) for w in webs]
    if not inputs:
        raise DataError("no data files found (.jsonl, .json, .parquet, .txt, MATH .tar.gz)", where=input_dir,
                        fix="point --input at a folder with GSM8K/MATH/logic JSONL or book .txt files")
    for inp in inputs:
        inp.sha256 = web.sha256(inp.files[0]) if inp.format == "web" else sha256_files(inp.files, root)
        if inp.split == "auto" and is_test_path(PurePath(inp.label.rstrip("/") + ("/x" if inp.label.endswith("/") else ""))):
            inp.split = "test"
    return inputs
