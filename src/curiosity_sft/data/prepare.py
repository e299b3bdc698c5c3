"""``prepare``: raw files -> ``train.jsonl`` / ``val.jsonl`` / ``test.jsonl`` + ``manifest.json``.

Everything is written into a temporary folder and moved into place only when the whole run has
succeeded, so a failed run never leaves a half-prepared dataset that looks usable. Inputs are
read in sorted order and the split is seeded, so the same inputs give byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import random
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import Progress

from curiosity_sft import __version__
from curiosity_sft.data.schema import Example, write_examples
from curiosity_sft.data.sources import detect_reader, is_data_file
from curiosity_sft.errors import DataError
from curiosity_sft.io import atomic_write_json, publish_dir


@dataclass
class PrepareResult:
    output_dir: Path
    counts: dict[str, dict[str, int]]  # split -> source -> examples


def is_test_file(path: Path) -> bool:
    """Official evaluation splits (``test.jsonl``, ``MATH/test``) never enter training."""
    return "test" in path.stem.lower().split("_") or path.stem.lower().startswith("test")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_inputs(input_dir: Path) -> list[Path]:
    if not input_dir.exists():
        raise DataError("input folder not found", where=input_dir, fix="pass the folder holding your raw data to --input")
    files = [input_dir] if input_dir.is_file() else sorted(p for p in input_dir.rglob("*") if is_data_file(p))
    if not files:
        raise DataError("no data files found (.jsonl, .txt, MATH .tar.gz)", where=input_dir,
                        fix="point --input at a folder with GSM8K/MATH/logic JSONL or book .txt files")
    return files


def split_train_val(examples: list[Example], val_ratio: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Stratified by source: every source gets the same share of validation examples."""
    by_source: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_source[ex.source].append(ex)
    train, val = [], []
    for source in sorted(by_source):
        group = sorted(by_source[source], key=lambda e: e.id)
        random.Random(f"{seed}:{source}").shuffle(group)
        k = round(len(group) * val_ratio) if len(group) > 1 else 0
        val += group[:k]
        train += group[k:]
    return train, val


def prepare(input_dir: str | Path, output_dir: str | Path, val_ratio: float = 0.05, seed: int = 42,
            show_progress: bool = True) -> PrepareResult:
    inp, out = Path(input_dir), Path(output_dir)
    files = find_inputs(inp)
    pool: dict[str, list[Example]] = {"train": [], "test": []}
    inputs: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates = Counter()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("reading", total=len(files))
        for path in files:
            fmt, reader = detect_reader(path)
            split = "test" if is_test_file(path) else "train"
            n = 0
            for ex in reader(path):
                if ex.id in seen:
                    duplicates[ex.source] += 1
                    continue
                seen.add(ex.id)
                pool[split].append(ex)
                n += 1
            inputs.append({"path": str(path.relative_to(inp) if inp.is_dir() else path.name), "format": fmt,
                           "split": split, "examples": n, "sha256": sha256(path)})
            progress.advance(task)
    if not pool["train"]:
        raise DataError("no training examples found (only test splits?)", where=inp)
    train, val = split_train_val(pool["train"], val_ratio, seed)
    test = sorted(pool["test"], key=lambda e: e.id)
    splits = {"train": train, "val": val, "test": test}
    counts = {name: dict(sorted(Counter(e.source for e in exs).items())) for name, exs in splits.items()}

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    for name, exs in splits.items():
        if exs or name != "test":
            write_examples(tmp / f"{name}.jsonl", exs)
    atomic_write_json(tmp / "manifest.json", {
        "inputs": inputs, "counts": counts, "exact_duplicates_removed": dict(sorted(duplicates.items())),
        "val_ratio": val_ratio, "seed": seed, "code_version": __version__,
    })
    publish_dir(tmp, out)
    return PrepareResult(out, counts)
