"""From generations to numbers: one record per generated example, then accuracy and BLEU tables.

``evaluate`` (which generates) and ``score`` (which re-reads generations from a samples file)
both go through here, so a re-score gives exactly the numbers an evaluation gives.
"""

from __future__ import annotations

import math
from collections import defaultdict
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from curiosity_sft.data.schema import Example
from curiosity_sft.evaluation.scorers import strip_think
from curiosity_sft.evaluation.tasks import (
    GSM8K,
    MATH,
    PROPOSITIONAL,
    is_scorable,
    rg_metadata,
    score_example,
    task_of,
)
from curiosity_sft.evaluation.text_metrics import bleu_chrf

BUDGET_FACTOR = 1.25  # a continuation a little longer than its reference still fits
BUDGET_STEP = 32  # budgets are multiples of this, so examples of similar length generate in one batch


def reference_budget(reference_tokens: int) -> int:
    """New tokens that let a generation reach its reference's length (BLEU's brevity penalty would
    otherwise cap it): ``BUDGET_FACTOR`` x the reference, rounded up to ``BUDGET_STEP``."""
    return BUDGET_STEP * max(1, math.ceil(BUDGET_FACTOR * reference_tokens / BUDGET_STEP))


def sample_record(ex: Example, prompt: str, output: str, new_tokens: int | None = None,
                  budget: int | None = None, sample: int = 0, thinking_cut: bool = False) -> dict[str, Any]:
    """One line of ``samples.jsonl``: the generation, what was read from it and the verdict.

    ``sample`` numbers the samples of one prompt (``--sampling deepseek``); ``thinking_cut`` marks a
    reply still inside ``<think>`` when its budget ran out: no answer, counted apart.
    """
    rec: dict[str, Any] = {"id": ex.id, "source": ex.source, "task": task_of(ex), "prompt": prompt, "output": output,
                           "extracted": None, "reference": ex.answer, "correct": None,
                           "reference_response": ex.reference, "new_tokens": new_tokens,
                           "max_new_tokens": budget, "sample": sample, "thinking_cut": thinking_cut}
    if budget is not None and new_tokens is not None:
        rec["cut_at_budget"] = new_tokens >= budget
    if is_scorable(ex):
        scores = score_example(ex, output)
        acc = scores["accuracy"]
        rec["extracted"], rec["correct"] = acc.extracted, acc.correct
        if acc.credit is not None:
            rec["scorer_credit"] = acc.credit
        if acc.note:
            rec["scorer_note"] = acc.note
        if "strict" in scores:
            rec["strict_extracted"], rec["strict_correct"] = scores["strict"].extracted, scores["strict"].correct
        if task_of(ex) == PROPOSITIONAL:
            rec["reference"] = {"entailed_by": rg_metadata(ex).get("premises")}
        for key in ("level", "type"):
            if ex.meta.get(key):
                rec[key] = ex.meta[key]
    return rec


def _acc(rows: list[dict[str, Any]], key: str = "correct") -> dict[str, Any]:
    return {"accuracy": sum(bool(r[key]) for r in rows) / len(rows), "n": len(rows)}


def _grouped(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get(key):
            groups[str(r[key])].append(r)
    return dict(sorted(groups.items()))


def _entry(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy of ``rows``. With several samples per prompt every sample is a row, so it is their
    mean. Replies whose thinking was cut by the budget are counted apart (``thinking_cut``): no
    answer, not a wrong one (still not correct, so the accuracy stays comparable with published
    figures)."""
    entry = _acc(rows)
    cut = [r for r in rows if r.get("thinking_cut")]
    if cut:
        entry["thinking_cut"] = {"n": len(cut), "at_tokens": max(r.get("max_new_tokens") or 0 for r in cut)}
    if any("strict_correct" in r for r in rows):
        entry["strict"] = _acc([r for r in rows if "strict_correct" in r], "strict_correct")
        entry["flexible"] = _acc(rows)
    return entry


def accuracy_table(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per source (GSM8K strict/flexible, MATH by level and subject, logic by puzzle type) and overall,
    over the scored samples (``correct`` not None)."""
    scored = [s for s in samples if s["correct"] is not None]
    out: dict[str, Any] = {}
    for src, rows in _grouped(scored, "source").items():
        entry = _entry(rows)
        for key, name in (("level", "by_level"), ("type", "by_subject"), ("task", "by_task")):
            groups = _grouped(rows, key)
            # by task only where it says more than the source does (logic: knights, zebra, ...)
            if groups and (key != "task" or len(groups) > 1 or not set(groups) <= {GSM8K, MATH}):
                entry[name] = {g: _acc(v) for g, v in groups.items()}
        out[src] = entry
    if scored:
        out["overall"] = _acc(scored)
    return out


def accuracy_by_task(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per ``meta["task"]``, whatever the sources are called: what the GSM8K gate reads."""
    return {task: _entry(rows) for task, rows in _grouped([s for s in samples if s["correct"] is not None],
                                                            "task").items()}


def bleu_table(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """sacrebleu BLEU/chrF of each generation (after any ``<think>`` block) against its reference
    response, per source and overall, with how many generations ran out of budget."""
    def table(rows: list[dict[str, Any]]) -> dict[str, Any]:
        scores = bleu_chrf([strip_think(s["output"]) for s in rows],
                           [strip_think(s["reference_response"]) for s in rows])
        if rows:
            scores["cut_at_budget"] = sum(bool(s.get("cut_at_budget")) for s in rows)
        return scores

    out = {src: table(rows) for src, rows in _grouped(samples, "source").items()}
    out["overall"] = table(samples)
    return out


def scorer_versions() -> dict[str, str]:
    """The packages whose rules decide correctness, recorded with every score."""
    out = {}
    for pkg in ("curiosity-sft", "reasoning-gym", "math-verify", "sacrebleu"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
