"""The evaluation prompts training data is decontaminated against.

By default: the official test splits found in the input, plus every ``--decontaminate`` file or
folder. An evaluation file may be in any training format, or just records with a prompt-like
field, because evaluation sets often carry no reference answer to train on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from curiosity_sft.data.decontamination import NgramIndex, prompt_text
from curiosity_sft.data.inputs import sha256_files
from curiosity_sft.data.records import BadRecords, iter_records
from curiosity_sft.data.schema import Example
from curiosity_sft.data.sources import detect_format, is_data_file, read_source
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError

PROMPT_KEYS = ("question", "problem", "prompt", "instruction", "input", "quiz", "text")


def eval_prompts(path: Path, opts: SourceOptions, bad: BadRecords) -> list[str]:
    """The prompts of an evaluation file: read as a training format, else from prompt-like fields."""
    try:
        return [prompt_text(ex) for _, ex in read_source(path, detect_format(path, bad), opts, bad)]
    except DataError as e:
        if path.suffix.lower() not in (".jsonl", ".json", ".parquet"):
            raise
        prompts = ["\n".join(str(rec[k]) for k in PROMPT_KEYS if isinstance(rec.get(k), str))
                   for _, rec in iter_records(path, bad)]
        if not any(prompts):
            raise DataError(f"no {'/'.join(PROMPT_KEYS)} field to decontaminate against ({e.what})", where=path,
                            line=e.line) from None
        return prompts


def eval_index(test: list[Example], files: Sequence[str | Path], n: int, opts: SourceOptions,
               bad: BadRecords) -> tuple[NgramIndex, list[dict[str, Any]]]:
    """N-grams of every evaluation prompt: the test splits found, plus ``--decontaminate`` files."""
    index = NgramIndex(n)
    for ex in test:
        index.add(prompt_text(ex))
    rows = [{"path": "(test splits in input)", "examples": len(test)}]
    for f in files:
        path = Path(f)
        if not path.exists():
            raise DataError("evaluation set not found", where=path, fix="check the --decontaminate path")
        files_in = sorted(p for p in path.rglob("*") if is_data_file(p)) if path.is_dir() else [path]
        k = 0
        for p in files_in:
            for prompt in eval_prompts(p, opts, bad):
                index.add(prompt)
                k += 1
        rows.append({"path": str(path), "examples": k, "sha256": sha256_files(files_in, path.parent)})
    return index, rows
