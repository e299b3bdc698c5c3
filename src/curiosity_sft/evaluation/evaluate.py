"""``evaluate``: a model and a data file -> ``results.json`` (+ ``samples.jsonl``).

Perplexity on every example; answer accuracy by greedy generation on the examples that carry a
verifiable answer.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from curiosity_sft.data.schema import Example, read_examples, write_jsonl
from curiosity_sft.data.sources import detect_reader
from curiosity_sft.errors import DataError
from curiosity_sft.evaluation.generate import generate
from curiosity_sft.evaluation.perplexity import perplexity
from curiosity_sft.evaluation.scorers import score
from curiosity_sft.io import atomic_write_json
from curiosity_sft.training.export import load_for_inference

log = logging.getLogger(__name__)


def load_eval_data(path: str | Path) -> list[Example]:
    """A prepared JSONL, or a raw GSM8K/MATH/logic file read with the same readers as ``prepare``."""
    p = Path(path)
    if not p.is_file():
        raise DataError("evaluation data file not found", where=p, fix="pass a prepared val.jsonl or a raw test file")
    fmt, reader = detect_reader(p)
    if fmt == "generic":
        return read_examples(p)
    examples = list(reader(p))
    if not examples:
        raise DataError("no examples in file", where=p)
    return examples


def subset(examples: list[Example], limit: int | None, seed: int = 0) -> list[Example]:
    """A deterministic subset: the same ``limit`` always picks the same examples."""
    if limit is None or limit >= len(examples):
        return examples
    picked = sorted(range(len(examples)), key=lambda i: random.Random(f"{seed}:{examples[i].id}").random())[:limit]
    return [examples[i] for i in sorted(picked)]


def evaluate(model_spec: str, data: str | Path, output: str | Path | None = None, *, limit: int | None = None,
             accuracy_limit: int | None = None, max_new_tokens: int = 256, batch_size: int = 16,
             max_length: int = 1024, show_progress: bool = True, model_bundle: Any = None) -> dict[str, Any]:
    model, tok, desc = model_bundle or load_for_inference(model_spec)
    examples = subset(load_eval_data(data), limit)
    ppl = perplexity(model, tok, examples, max_length, batch_size, show_progress)
    scorable = subset([e for e in examples if e.answer is not None and e.messages is not None], accuracy_limit)
    results: dict[str, Any] = {"model": desc, "data": str(data), "data_sha256": _sha(data), "examples": len(examples),
                               "perplexity": ppl}
    if scorable:
        gens, tps = generate(model, tok, scorable, max_new_tokens, batch_size, show_progress)
        per: dict[str, list[bool]] = defaultdict(list)
        samples = []
        for g in gens:
            sc = score(g.example.source, g.output, g.example.answer or "")
            per[g.example.source].append(sc.correct)
            samples.append({"id": g.example.id, "source": g.example.source, "prompt": g.prompt, "output": g.output,
                            "extracted": sc.extracted, "reference": g.example.answer, "correct": sc.correct})
        acc = {s: {"accuracy": sum(v) / len(v), "n": len(v)} for s, v in sorted(per.items())}
        allv = [c for v in per.values() for c in v]
        acc["overall"] = {"accuracy": sum(allv) / len(allv), "n": len(allv)}
        results["accuracy"] = acc
        results["generation_tokens_per_second"] = tps
        if output is not None:
            write_jsonl(Path(output) / "samples.jsonl", samples)
    if output is not None:
        atomic_write_json(Path(output) / "results.json", results)
    return results


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
