"""``evaluate``: a model and a data file -> ``results.json``, ``samples.jsonl``, ``report.md``/``.html``.

Perplexity on every example; generation once, then BLEU/chrF against the reference responses
and answer accuracy on the examples that carry a verifiable answer; quality gates on top.
Every number is reproducible: the subset is deterministic and ``results.json`` holds the config,
the settings inherited from the checkpoint, the scorers' versions and fingerprints of the model
and the data. Every input is checked before the model is loaded (``preflight``), and the output
folder is written whole or not at all (``outputs``).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from curiosity_sft.chat_template import apply_override
from curiosity_sft.config import SFTConfig
from curiosity_sft.data.schema import Example
from curiosity_sft.errors import UserError
from curiosity_sft.evaluation.eval_data import load_eval_data, subset
from curiosity_sft.evaluation.fewshot import Shot, assign_shots, default_pool, read_pool
from curiosity_sft.evaluation.gates import check_gates
from curiosity_sft.evaluation.generate import (
    Generation,
    GenerationSettings,
    generate,
    generate_vllm,
    vllm_available,
)
from curiosity_sft.evaluation.outputs import file_sha256, write_evaluation_folder
from curiosity_sft.evaluation.perplexity import perplexity
from curiosity_sft.evaluation.preflight import (
    check_model_file,
    inherited_settings,
    is_pytorch_read_error,
    read_baseline,
    resolve_max_length,
)
from curiosity_sft.evaluation.report import write_reports
from curiosity_sft.evaluation.scoring import (
    BUDGET_FACTOR,
    BUDGET_STEP,
    accuracy_by_task,
    accuracy_table,
    bleu_table,
    reference_budget,
    sample_record,
    scorer_versions,
)
from curiosity_sft.evaluation.tasks import TASKS, is_scorable, task_of
from curiosity_sft.io import check_output_dir
from curiosity_sft.training.export import load_for_inference

log = logging.getLogger(__name__)

__all__ = ["evaluate", "load_eval_data", "subset", "model_fingerprint", "run_folder", "hf_folder"]


def evaluate(model_spec: str, data: str | Path, output: str | Path | None = None, *, limit: int | None = None,
             accuracy_limit: int | None = None, max_new_tokens: int = 256, batch_size: int = 16,
             max_length: int | None = None, show_progress: bool = True, model_bundle: Any = None,
             tasks: tuple[str, ...] = TASKS, config: SFTConfig | None = None,
             compare: str | Path | None = None, overwrite: bool = False, split: str = "held-out",
             fewshot_file: str | Path | None = None) -> dict[str, Any]:
    """Evaluate one model; ``compare`` is another evaluation's ``results.json`` (e.g. the base model).

    ``max_length`` None takes the checkpoint's own (its run's ``config.yaml``), else the config's.
    ``split`` picks the file's held-out examples (default), its training examples, or all.
    ``fewshot_file`` holds the solved problems of ``eval_num_fewshot`` (default: GSM8K's
    ``train.jsonl`` beside ``data``).
    """
    cfg = config or SFTConfig()
    model_spec = str(model_spec)
    # --- every input checked before any model is loaded ---
    out = None
    if output is not None:
        out = check_output_dir(output, "evaluate", overwrite=overwrite, inputs=[data, *([compare] if compare else [])])
    for name, value in (("--limit", limit), ("--max-new-tokens", max_new_tokens), ("--batch-size", batch_size)):
        if value is not None and value < (0 if name == "--limit" else 1):
            raise UserError(f"{name} must be {'>= 0' if name == '--limit' else 'positive'}, got {value}", where=name)
    every = load_eval_data(data, split)
    baseline = read_baseline(compare) if compare else None
    shots = (assign_shots(every, read_pool(fewshot_file or default_pool(data)), cfg.eval_num_fewshot)
             if cfg.eval_num_fewshot else {})
    if model_bundle is None:
        check_model_file(model_spec)
    inherited = inherited_settings(model_spec)
    max_length, max_length_from = resolve_max_length(max_length, inherited, cfg.max_length, "the config")
    log.info("max_length %d (from %s)", max_length, max_length_from)

    model, tok, desc = model_bundle or _load_model(model_spec)
    apply_override(tok, cfg.chat_template)
    settings = GenerationSettings.from_config(cfg, next(model.parameters()).device, max_new_tokens)
    log.info("tokenizer %s", getattr(tok, "name_or_path", "?"))
    examples = subset(every, limit)
    results: dict[str, Any] = {
        "model": desc, "model_spec": model_spec, "model_sha256": model_fingerprint(model),
        "data": str(data), "data_sha256": file_sha256(Path(data)), "split": split,
        "examples": len(examples), "limit": limit, "tasks": list(tasks),
        "tasks_in_data": sorted({t for e in every if (t := task_of(e))}), "max_new_tokens": max_new_tokens,
        "settings": {"max_length": max_length, "max_length_from": max_length_from,
                     "tokenizer": str(getattr(tok, "name_or_path", ""))},
        "scorers": scorer_versions(), "config": cfg.model_dump()}
    if "perplexity" in tasks:
        results["perplexity"] = perplexity(model, tok, examples, max_length, batch_size, show_progress)
    budgets = generation_budgets(examples, tok, tasks, max_new_tokens, accuracy_limit)
    samples: list[dict[str, Any]] = []
    if budgets:
        to_generate = [e for e in examples if e.id in budgets]
        gens, results["generation"] = _generate(model_spec, model, tok, to_generate, budgets, batch_size,
                                                  show_progress, settings, shots)
        results["generation"]["num_fewshot"] = cfg.eval_num_fewshot
        samples = [sample_record(g.example, g.prompt, g.output, g.new_tokens, g.budget, g.sample, g.thinking_cut)
                   for g in gens]
    if "bleu" in tasks:
        results["bleu"] = bleu_table(samples)
    if "accuracy" in tasks:
        results["accuracy"] = accuracy_table(samples)
        results["accuracy_by_task"] = accuracy_by_task(samples)
    gates = check_gates(results, cfg.gate_max_perplexity, cfg.gate_min_bleu, cfg.gate_min_gsm8k_accuracy)
    results["gates"] = [g.to_dict() for g in gates]
    if out is not None:
        write_evaluation_folder(out, "evaluate", results, samples, extra=lambda tmp: write_reports(
            tmp, results, samples, gates, baseline, run_folder(model_spec)))
    return results


def generation_budgets(examples: Sequence[Example], tok: Any, tasks: Sequence[str], max_new_tokens: int,
                       accuracy_limit: int | None = None) -> dict[str, int]:
    """{example id: new-token budget} for every example to generate.

    BLEU examples (every chat example) get a budget sized to their reference
    (``scoring.reference_budget``): a fixed budget shorter than the reference caps BLEU by
    construction (a ~450-token story continuation against 256 tokens). Scored examples get at
    least ``max_new_tokens``, the room a worked answer needs.
    """
    budgets: dict[str, int] = {}
    if "bleu" in tasks:
        chats = [e for e in examples if e.messages is not None]
        if chats:
            lengths = [len(ids) for ids in tok([e.reference for e in chats], add_special_tokens=False)["input_ids"]]
            budgets = {e.id: reference_budget(n) for e, n in zip(chats, lengths, strict=True)}
    if "accuracy" in tasks:
        for e in subset([e for e in examples if is_scorable(e)], accuracy_limit):
            budgets[e.id] = max(budgets.get(e.id, 0), max_new_tokens)
    return budgets


def _generate(model_spec: str, model: torch.nn.Module, tok: Any, examples: list[Example], budgets: dict[str, int],
              batch_size: int, show_progress: bool, settings: GenerationSettings,
              shots: dict[str, list[Shot]]) -> tuple[list[Generation], dict[str, Any]]:
    """Generations in input order, each with its own answer budget (``generation_budgets``) plus the
    thinking budget of ``settings`` when the template thinks."""
    per_example = [budgets[e.id] for e in examples]
    hf = hf_folder(model_spec)
    if hf is not None and vllm_available():
        gens, speed = generate_vllm(hf, tok, examples, per_example, settings=settings, shots=shots)
    else:
        gens, speed = generate(model, tok, examples, per_example, batch_size, show_progress, settings=settings,
                               shots=shots)
    counts: dict[int, int] = defaultdict(int)
    for b in per_example:
        counts[b] += 1
    return gens, {**speed, "budgets": {str(b): n for b, n in sorted(counts.items())},
                  "budget_rule": f"scored: >= max_new_tokens; BLEU: {BUDGET_FACTOR} x reference tokens, "
                                 f"rounded up to a multiple of {BUDGET_STEP}"}


def _load_model(spec: str) -> tuple[torch.nn.Module, Any, str]:
    try:
        return load_for_inference(spec)
    except Exception as e:
        if Path(spec).suffix == ".pt" and is_pytorch_read_error(e):
            raise UserError(f"cannot read the checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:120]})",
                            where=spec, fix="pass an intact latest.pt or a checkpoint-N folder of the run") from None
        raise


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
