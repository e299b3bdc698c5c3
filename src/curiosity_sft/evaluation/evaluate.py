"""``evaluate``: a model and a data file -> ``results.json``, ``samples.jsonl``, ``report.md``/``.html``.

Perplexity on every example; generation once, then BLEU/chrF against the reference responses
and answer accuracy on the examples that carry a verifiable answer; quality gates on top.
Every number is reproducible: the subset is deterministic and ``results.json`` holds the config
and fingerprints of the model and the data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from curiosity_sft.chat_template import apply_override
from curiosity_sft.config import SFTConfig
from curiosity_sft.data.records import BadRecords
from curiosity_sft.data.schema import Example, iter_jsonl, read_examples, write_jsonl
from curiosity_sft.data.sources import detect_format, read_source
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError
from curiosity_sft.evaluation.fewshot import assign_shots, default_pool, read_pool
from curiosity_sft.evaluation.gates import check_gates
from curiosity_sft.evaluation.generate import GenerationSettings, generate, generate_vllm, vllm_available
from curiosity_sft.evaluation.perplexity import perplexity
from curiosity_sft.evaluation.report import write_reports
from curiosity_sft.evaluation.scorers import strip_think
from curiosity_sft.evaluation.tasks import TASKS, is_scorable, score_example
from curiosity_sft.evaluation.text_metrics import bleu_chrf
from curiosity_sft.io import atomic_write_json
from curiosity_sft.training.export import load_for_inference

log = logging.getLogger(__name__)


def load_eval_data(path: str | Path) -> list[Example]:
    """A prepared JSONL, or a raw GSM8K/MATH/logic file read with the same readers as ``prepare``."""
    p = Path(path)
    if not p.is_file():
        raise DataError("evaluation data file not found", where=p, fix="pass a prepared val.jsonl or a raw test file")
    fmt = detect_format(p)
    if fmt == "generic" and _is_prepared(p):
        return read_examples(p)
    examples = [ex for _, ex in read_source(p, fmt, SourceOptions(), BadRecords())]
    if not examples:
        raise DataError("no examples in file", where=p)
    if fmt == "logic":
        _attach_premises(p, examples)
    return examples


def _is_prepared(p: Path) -> bool:
    for _, first in iter_jsonl(p):
        return isinstance(first, dict) and "source" in first and ("messages" in first or "text" in first)
    return False


def _attach_premises(path: Path, examples: list[Example]) -> None:
    """Propositional-logic records have no unique answer; scoring needs their premises, read from the raw file."""
    premises = {str(r.get("question", "")).strip(): (r.get("metadata") or {}).get("premises")
                for _, r in iter_jsonl(path) if isinstance(r, dict) and r.get("task") == "propositional_logic"}
    for ex in examples:
        p = premises.get(ex.prompt_messages[-1]["content"]) if ex.messages else None
        if p:
            ex.meta["premises"] = p


def subset(examples: list[Example], limit: int | None, seed: int = 0) -> list[Example]:
    """A deterministic subset: the same ``limit`` always picks the same examples, kept in file order."""
    if limit is None or limit >= len(examples):
        return examples
    picked = sorted(range(len(examples)), key=lambda i: random.Random(f"{seed}:{examples[i].id}").random())[:limit]
    return [examples[i] for i in sorted(picked)]


def evaluate(model_spec: str, data: str | Path, output: str | Path | None = None, *, limit: int | None = None,
             accuracy_limit: int | None = None, max_new_tokens: int = 256, batch_size: int = 16,
             max_length: int = 1024, show_progress: bool = True, model_bundle: Any = None,
             tasks: tuple[str, ...] = TASKS, config: SFTConfig | None = None,
             compare: str | Path | None = None, fewshot_file: str | Path | None = None) -> dict[str, Any]:
    """Evaluate one model; ``compare`` is another evaluation's ``results.json`` (e.g. the base model)."""
    cfg = config or SFTConfig()
    model, tok, desc = model_bundle or load_for_inference(model_spec)
    apply_override(tok, cfg.chat_template)
    every = load_eval_data(data)
    shots = (assign_shots(every, read_pool(fewshot_file or default_pool(data)), cfg.eval_num_fewshot)
             if cfg.eval_num_fewshot else {})
    settings = GenerationSettings.from_config(cfg, next(model.parameters()).device, max_new_tokens)
    examples = subset(every, limit)
    results: dict[str, Any] = {
        "model": desc, "model_spec": str(model_spec), "model_sha256": model_fingerprint(model),
        "data": str(data), "data_sha256": hashlib.sha256(Path(data).read_bytes()).hexdigest(),
        "examples": len(examples), "limit": limit, "tasks": list(tasks), "max_new_tokens": max_new_tokens,
        "config": cfg.model_dump()}
    if "perplexity" in tasks:
        results["perplexity"] = perplexity(model, tok, examples, max_length, batch_size, show_progress)
    to_generate = [e for e in examples if e.messages is not None] if "bleu" in tasks else []
    if "accuracy" in tasks:
        scorable = subset([e for e in examples if is_scorable(e)], accuracy_limit)
        ids = {e.id for e in to_generate}
        to_generate += [e for e in scorable if e.id not in ids]
    samples: list[dict[str, Any]] = []
    if to_generate:
        hf = hf_folder(model_spec)
        if hf is not None and vllm_available():
            gens, speed = generate_vllm(hf, tok, to_generate, settings=settings, shots=shots)
        else:
            gens, speed = generate(model, tok, to_generate, batch_size=batch_size, show_progress=show_progress,
                                   settings=settings, shots=shots)
        results["generation"] = {**speed, "num_fewshot": cfg.eval_num_fewshot}
        samples = [_sample(g.example, g.prompt, g.output, g.new_tokens, g.sample, g.thinking_cut) for g in gens]
        if "bleu" in tasks:
            results["bleu"] = _bleu(samples)
        if "accuracy" in tasks:
            results["accuracy"] = accuracy_table([s for s in samples if s["correct"] is not None], speed["budget"])
    gates = check_gates(results, cfg.gate_max_perplexity, cfg.gate_min_bleu, cfg.gate_min_gsm8k_accuracy)
    results["gates"] = [g.to_dict() for g in gates]
    if output is not None:
        out = Path(output)
        write_jsonl(out / "samples.jsonl", samples)
        atomic_write_json(out / "results.json", results)
        baseline = json.loads(Path(compare).read_text()) if compare else None
        write_reports(out, results, samples, gates, baseline, run_folder(model_spec))
    return results


def _sample(ex: Example, prompt: str, output: str, new_tokens: int, sample: int = 0,
            thinking_cut: bool = False) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": ex.id, "source": ex.source, "prompt": prompt, "output": output,
                           "extracted": None, "reference": ex.answer, "correct": None,
                           "reference_response": ex.reference, "new_tokens": new_tokens, "sample": sample,
                           "thinking_cut": thinking_cut}
    if is_scorable(ex):
        scores = score_example(ex, output)
        rec["extracted"], rec["correct"] = scores["accuracy"].extracted, scores["accuracy"].correct
        if "strict" in scores:
            rec["strict_extracted"], rec["strict_correct"] = scores["strict"].extracted, scores["strict"].correct
        if ex.answer is None and ex.meta.get("premises"):
            rec["reference"] = {"entailed_by": ex.meta["premises"]}
        for key in ("task", "level", "type"):
            if ex.meta.get(key):
                rec[key] = ex.meta[key]
    return rec


def _bleu(samples: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        by[s["source"]].append(s)
    out = {src: bleu_chrf([strip_think(s["output"]) for s in ss], [strip_think(s["reference_response"]) for s in ss])
           for src, ss in sorted(by.items())}
    out["overall"] = bleu_chrf([strip_think(s["output"]) for s in samples],
                               [strip_think(s["reference_response"]) for s in samples])
    return out


def _acc(rows: list[dict[str, Any]], key: str = "correct") -> dict[str, Any]:
    return {"accuracy": sum(bool(r[key]) for r in rows) / len(rows), "n": len(rows)}


def accuracy_table(samples: list[dict[str, Any]], budget: int | None = None) -> dict[str, Any]:
    """Per source, with GSM8K strict/flexible, MATH by level and subject, logic by puzzle type.

    With several samples per prompt every sample is a row, so the accuracy is their mean. Replies
    whose thinking was cut by the budget are counted apart (``thinking_cut``): no answer, not a
    wrong one (still not correct, so the accuracy stays comparable with published figures).
    """
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        by[s["source"]].append(s)
    out: dict[str, Any] = {}
    for src, rows in sorted(by.items()):
        entry = _acc(rows)
        if any(r.get("thinking_cut") for r in rows):
            entry["thinking_cut"] = {"n": sum(bool(r.get("thinking_cut")) for r in rows), "at_tokens": budget}
        if any("strict_correct" in r for r in rows):
            entry["strict"] = _acc([r for r in rows if "strict_correct" in r], "strict_correct")
            entry["flexible"] = _acc(rows)
        for key, name in (("level", "by_level"), ("type", "by_subject"), ("task", "by_task")):
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                if r.get(key):
                    groups[str(r[key])].append(r)
            if groups:
                entry[name] = {g: _acc(v) for g, v in sorted(groups.items())}
        out[src] = entry
    if samples:
        out["overall"] = _acc(samples)
    return out


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, shape, bytes): same weights, same fingerprint."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def run_folder(model_spec: str) -> Path | None:
    """The training run a model came from (for its loss curves), when ``--model`` points into one."""
    p = Path(model_spec)
    if not p.exists():  # an alias or hub id: no run behind it
        return None
    for cand in (p, p.parent, p.parent.parent):
        if (cand / "runs").is_dir() or (cand / "metrics.jsonl").is_file():
            return cand
    return None


def hf_folder(model_spec: str) -> Path | None:
    """A Hugging Face folder holding exactly these weights (what vLLM loads), if there is one."""
    p = Path(model_spec)
    cands = [p, *([p.parent / "hf_model"] if p.name == "latest.pt" else []),
             *([p / "hf_model"] if (p / "latest.pt").is_file() else [])]  # not checkpoint-N: other weights
    for cand in cands:
        if cand.is_dir() and (cand / "config.json").is_file() and not (cand / "adapter_config.json").is_file():
            return cand
    return None
