"""``prepare``: raw files -> ``train.jsonl`` / ``val.jsonl`` / ``test.jsonl`` + ``manifest.json``.

read -> exact and near duplicates -> decontamination -> length accounting -> caps -> split ->
mixing -> write. Official test splits are read first so that any training example repeating or
overlapping a test problem is the one dropped; the test split itself is never filtered, so its
counts match the published ones. Everything is written into a temporary folder and moved into
place only when the whole run has succeeded. Inputs are read in sorted order, ids are content
hashes and every sample is seeded, so the same inputs and seed give byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.progress import Progress

from curiosity_sft import __version__
from curiosity_sft.data.data_config import DataConfig, explain, load_data_config
from curiosity_sft.data.eval_sets import eval_index
from curiosity_sft.data.filters import (
    NgramIndex,
    Verdict,
    contaminated,
    exact_duplicates,
    near_duplicates,
)
from curiosity_sft.data.inputs import Input, find_inputs
from curiosity_sft.data.lengths import LengthCounter, percentiles, truncate
from curiosity_sft.data.mixing import cap, mix, shares
from curiosity_sft.data.reasoning import format_examples, resolve_format
from curiosity_sft.data.records import BadRecords, OnError
from curiosity_sft.data.schema import Example, write_examples, write_jsonl
from curiosity_sft.data.sources import detect_format, is_archive, read_source
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import ConfigError, DataError
from curiosity_sft.io import atomic_write_json, publish_dir

TEMPLATE_ROOM = 64  # tokens a chat template adds around a book continuation (SmolLM2: ~35)
TOKENIZE_BATCH = 2048  # big enough for the fast tokenizer's batch speed, small enough for a live progress bar
STAGES = ("read", "exact_duplicate", "near_duplicate", "contaminated", "too_long", "truncated", "capped")


@dataclass
class PrepareResult:
    output_dir: Path
    counts: dict[str, dict[str, int]]  # split -> source -> examples
    manifest: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # file -> bad records skipped (--on-error skip)
    skipped_examples: list[str] = field(default_factory=list)  # the first few skip messages


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


def code_version() -> dict[str, str]:
    """Package version and a hash of the data code, so a manifest says which code made it."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(p.relative_to(Path(__file__).parent).as_posix().encode() + b"\0" + p.read_bytes())
    return {"package": __version__, "data_code_sha256": h.hexdigest()[:16]}


def read_file(path: Path, inp: Input, opts: SourceOptions,
              bad: BadRecords) -> tuple[str, list[tuple[str | None, Example]]]:
    """(format, examples) of one file, read completely so a file that fails halfway adds nothing."""
    fmt = inp.format or detect_format(path, bad)
    if fmt != "math" and is_archive(path):
        raise DataError(f"format `{fmt}` cannot read an archive", where=path, fix="only MATH comes as .tar.gz")
    return fmt, list(read_source(path, fmt, SourceOptions(**{**vars(opts), "source_name": inp.source}), bad))


def read_inputs(inputs: list[Input], opts: SourceOptions, bad: BadRecords,
                progress: Progress) -> tuple[list[Example], list[Example], list[dict[str, Any]]]:
    """(train pool, test pool, manifest rows) from every input, in input order."""
    pools: dict[str, list[Example]] = {"train": [], "test": []}
    rows = []
    task = progress.add_task("reading", total=sum(len(i.files) for i in inputs))
    for inp in inputs:
        formats: set[str] = set()
        split_counts: Counter[str] = Counter()
        before = bad.total
        for path in inp.files:
            progress.advance(task)
            try:
                fmt, read = read_file(path, inp, opts, bad)
            except DataError as e:  # a whole file is bad (empty, binary, hostile): fail, or skip it
                bad.handle(e, str(path))
                continue
            formats.add(fmt)
            for member_split, ex in read:
                split = inp.split if inp.split != "auto" else (member_split or "train")
                pools[split].append(ex)
                split_counts[split] += 1
        rows.append({"path": inp.label, "format": "/".join(sorted(formats)), "split": inp.split if inp.split != "auto"
                     else "/".join(sorted(split_counts)) or "train", "examples": dict(sorted(split_counts.items())),
                     "skipped": bad.total - before, "sha256": inp.sha256})
    return pools["train"], pools["test"], rows


def _by_source(examples: Sequence[Example], lengths: Sequence[int]) -> dict[str, dict[str, int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for ex, n in zip(examples, lengths, strict=True):
        groups[ex.source].append(n)
    return {s: {"examples": len(v), **percentiles(v)} for s, v in sorted(groups.items())}


def resolve_config(data_config: str | Path | DataConfig | None, val_ratio: float, **overrides: Any) -> DataConfig:
    """The data config with the command-line options that were given applied on top."""
    cfg = data_config if isinstance(data_config, DataConfig) else load_data_config(data_config)
    updates = {k: v for k, v in overrides.items() if v is not None and k not in ("model", "decontaminate")}
    if overrides.get("model") is not None:
        updates["model"] = None if overrides["model"].lower() == "none" else overrides["model"]
    updates["decontaminate"] = [*cfg.decontaminate, *map(str, overrides.get("decontaminate") or ())]
    try:
        cfg = DataConfig(**{**cfg.model_dump(), **updates})
    except ValidationError as e:
        raise explain(e, Path("<command line>"), None) from None
    if not 0 <= val_ratio < 1:
        raise ConfigError(f"--val-ratio must be in [0, 1), got {val_ratio}", where="<command line>")
    return cfg


@dataclass
class Filtered:
    """What survives the filters: kept training examples with their lengths, and every verdict."""

    kept: list[Example]
    kept_len: dict[str, int]
    test_len: list[int]
    verdicts: dict[int, Verdict]
    truncated: Counter[str]


def filter_pool(pool: list[Example], n_test: int, cfg: DataConfig, index: NgramIndex, counter: LengthCounter,
                progress: Progress) -> Filtered:
    """Duplicates, contamination and length over ``pool`` (the ``n_test`` test examples first).

    Test examples take part as the reference every training example is compared with, but are
    never dropped themselves.
    """
    task = progress.add_task("deduplicating", total=2)
    verdicts = exact_duplicates(pool)
    progress.advance(task)
    verdicts |= near_duplicates(pool, cfg.near_dup_threshold, skip=verdicts)
    progress.advance(task)
    verdicts = {i: v for i, v in verdicts.items() if i >= n_test}
    task = progress.add_task("decontaminating", total=1)
    verdicts |= contaminated(pool, index, skip=set(verdicts) | set(range(n_test)))
    progress.advance(task)

    kept_idx = [i for i in range(len(pool)) if i not in verdicts]
    task = progress.add_task("tokenizing", total=len(kept_idx))
    lengths: dict[int, int] = {}
    for start in range(0, len(kept_idx), TOKENIZE_BATCH):
        chunk = kept_idx[start:start + TOKENIZE_BATCH]
        lengths.update(zip(chunk, counter.examples([pool[i] for i in chunk]), strict=True))
        progress.advance(task, len(chunk))
    out = Filtered([], {}, [lengths[i] for i in range(n_test)], verdicts, Counter())
    for i in kept_idx[n_test:]:
        ex, n = pool[i], lengths[i]
        if n > cfg.max_length:
            short = truncate(ex, n, cfg.max_length, counter) if cfg.overflow == "truncate" else None
            if short is None:
                verdicts[i] = Verdict("too_long", detail=str(n))
                continue
            out.truncated[ex.source] += 1
            ex, n = short, counter.examples([short])[0]
        out.kept.append(ex)
        out.kept_len[ex.id] = n
    return out


def write_outputs(out: Path, splits: dict[str, list[Example]], dropped: list[dict[str, Any]],
                  manifest: dict[str, Any]) -> None:
    """Write everything into a temporary sibling folder, then move it into place in one step."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for name, exs in splits.items():
            if exs or name != "test":
                write_examples(tmp / f"{name}.jsonl", exs)
        write_jsonl(tmp / "dropped.jsonl", dropped)
        atomic_write_json(tmp / "manifest.json", manifest)
        publish_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def prepare(input_dir: str | Path, output_dir: str | Path, val_ratio: float = 0.05, seed: int = 42,
            show_progress: bool = True, *, data_config: str | Path | DataConfig | None = None,
            on_error: OnError = "fail", max_length: int | None = None, model: str | None = None,
            decontaminate: Sequence[str | Path] = (), ngram: int | None = None,
            overflow: str | None = None) -> PrepareResult:
    """Prepare ``input_dir`` into ``output_dir``. Keyword options override the data config's;
    ``model="none"`` (or ``model: null`` in the config) skips tokenization and estimates lengths."""
    cfg = resolve_config(data_config, val_ratio, max_length=max_length, model=model, decontaminate=decontaminate,
                         ngram=ngram, overflow=overflow)
    inp, out = Path(input_dir), Path(output_dir)
    bad = BadRecords(on_error)
    inputs = find_inputs(inp, cfg, skip=out.resolve() if out.exists() else None)
    if cfg.model is None:
        counter = LengthCounter(None)
    else:
        from curiosity_sft.models import load_tokenizer

        counter = LengthCounter(load_tokenizer(cfg.model))
    opts = SourceOptions(strip_calculator=cfg.strip_calculator, book_instructions=cfg.book_instructions,
                         passage_tokens=cfg.max_length - TEMPLATE_ROOM, count_tokens=counter.texts)

    with Progress(disable=not show_progress, transient=True) as progress:
        train_pool, test, input_rows = read_inputs(inputs, opts, bad, progress)
        thinks = counter.chat is not None and bool(counter.tok.chat_template) and counter.chat.behaviour.thinks
        reasoning = resolve_format(cfg.reasoning_format, thinks)
        train_pool, written = format_examples(train_pool, reasoning)  # test splits stay as published
        if not train_pool:
            raise DataError("no training examples found (only test splits?)", where=inp)
        index, eval_rows = eval_index(test if cfg.decontaminate_test_splits else [], cfg.decontaminate, cfg.ngram,
                                      opts, bad)
        pool = test + train_pool  # test first: a training copy of a test problem is what gets dropped
        f = filter_pool(pool, len(test), cfg, index, counter, progress)

    stats: dict[str, Counter[str]] = defaultdict(Counter)
    for ex in train_pool:
        stats[ex.source]["read"] += 1
    for i, v in f.verdicts.items():
        stats[pool[i].source][v.reason] += 1
    for source, k in f.truncated.items():
        stats[source]["truncated"] = k
    limits = {s.name: s.max_examples for s in cfg.sources if s.max_examples is not None}
    kept, capped = cap(f.kept, limits, seed)
    for source, k in capped.items():
        stats[source]["capped"] = k
    train, val = split_train_val(kept, val_ratio, seed)
    train_len = [f.kept_len[e.id] for e in train]
    weights = {s.name: s.weight for s in cfg.sources if s.weight is not None}
    mixed, mixed_len = mix(train, train_len, weights, seed) if weights else (train, train_len)
    test_order = sorted(range(len(test)), key=lambda i: test[i].id)
    splits = {"train": mixed, "val": val, "test": [test[i] for i in test_order]}
    split_len = {"train": mixed_len, "val": [f.kept_len[e.id] for e in val], "test": [f.test_len[i] for i in test_order]}
    counts = {name: dict(sorted(Counter(e.source for e in exs).items())) for name, exs in splits.items()}
    for name, exs in (("val", val), ("train", train), ("mixed", mixed)):
        for source, k in Counter(e.source for e in exs).items():
            stats[source][name] = k
    table = {s: {k: c.get(k, 0) for k in (*STAGES, "val", "train", "mixed")} for s, c in sorted(stats.items())}
    dropped = [{"id": pool[i].id, "source": pool[i].source, "reason": v.reason, "detail": v.detail}
               for i, v in sorted(f.verdicts.items(), key=lambda kv: (kv[1].reason, pool[kv[0]].id))]
    manifest = {
        "code_version": code_version(),
        "config": {**cfg.model_dump(), "val_ratio": val_ratio, "seed": seed, "on_error": on_error},
        "inputs": input_rows,
        "counts": counts,
        "filters": table,
        "exact_duplicates_removed": {s: v["exact_duplicate"] for s, v in table.items() if v["exact_duplicate"]},
        "decontamination": {"ngram": cfg.ngram, "eval_sets": eval_rows, "dropped_ids_file": "dropped.jsonl",
                            "dropped": {s: v["contaminated"] for s, v in table.items()}},
        "length": {"unit": counter.unit, "max_length": cfg.max_length, "overflow": cfg.overflow,
                   "test_over_max_length": sum(n > cfg.max_length for n in f.test_len),
                   **{name: _by_source(splits[name], split_len[name]) for name in splits}},
        "reasoning_format": {"asked": cfg.reasoning_format, "used": reasoning, "examples": dict(sorted(written.items()))},
        "mixing": {"weights": weights, "before": shares(train, train_len), "after": shares(mixed, mixed_len)},
        "skipped_records": dict(sorted(bad.skipped.items())),
    }
    write_outputs(out, splits, dropped, manifest)
    return PrepareResult(out, counts, manifest, dict(bad.skipped), list(bad.first_errors))
