"""Quality gates: the handful of numbers that decide whether a checkpoint moves on.

Thresholds come from the config (``gate_*`` keys, defaulting to the seed's targets). A gate is
``pass`` or ``fail`` on a measured value; ``not run`` when it does not apply (its ``--tasks``
entry was not asked for, or, for the GSM8K gate, the data holds no GSM8K-task example); and
``not measured`` when it applies but its metric measured nothing (``--limit 0``, every example
over ``max_length``, no GSM8K example left to score). ``not measured`` is never a pass: under
``--fail-on-gates`` it fails like ``fail``, because a checkpoint that was never measured has not
shown that it meets the target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from curiosity_sft.evaluation.tasks import GSM8K


@dataclass
class Gate:
    name: str
    metric: str
    value: float | None
    op: str  # "<" or ">"
    threshold: float
    status: str  # "pass", "fail", "not measured" or "not run"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gate(name: str, metric: str, value: float | None, op: str, threshold: float, applies: bool, why_not: str) -> Gate:
    if not applies:
        return Gate(name, metric, None, op, threshold, "not run", why_not)
    if value is None:
        return Gate(name, metric, None, op, threshold, "not measured", "asked for, but nothing was measured")
    ok = value < threshold if op == "<" else value > threshold
    return Gate(name, metric, value, op, threshold, "pass" if ok else "fail")


def _get(results: dict[str, Any], *keys: str) -> Any:
    r: Any = results
    for k in keys:
        r = r.get(k) if isinstance(r, dict) else None
    return r


def check_gates(results: dict[str, Any], max_perplexity: float, min_bleu: float, min_gsm8k: float) -> list[Gate]:
    """Perplexity (overall), BLEU (0-1 scale) and GSM8K-task accuracy (flexible) against thresholds.

    Which gates apply comes from ``results["tasks"]`` (what was asked) and
    ``results["tasks_in_data"]`` (the ``meta["task"]`` values of the evaluated examples, before
    ``--limit``); where either is missing every gate applies, so an incomplete results file is
    judged strictly.
    """
    asked = set(results["tasks"] if "tasks" in results else ("perplexity", "bleu", "accuracy"))
    in_data = results.get("tasks_in_data")
    has_gsm8k = in_data is None or GSM8K in in_data
    return [
        _gate("perplexity", "perplexity.overall.perplexity", _get(results, "perplexity", "overall", "perplexity"),
              "<", max_perplexity, "perplexity" in asked, "--tasks has no perplexity"),
        _gate("BLEU", "bleu.overall.bleu_01", _get(results, "bleu", "overall", "bleu_01"), ">", min_bleu,
              "bleu" in asked, "--tasks has no bleu"),
        _gate("GSM8K accuracy", "accuracy_by_task.gsm8k.accuracy", _get(results, "accuracy_by_task", GSM8K, "accuracy"),
              ">", min_gsm8k, "accuracy" in asked and has_gsm8k,
              "--tasks has no accuracy" if "accuracy" not in asked else "no example with meta.task gsm8k in the data"),
    ]


def failed(gates: list[Gate]) -> list[Gate]:
    """The gates that stop ``--fail-on-gates``: failed ones, and ones that applied but measured nothing."""
    return [g for g in gates if g.status in ("fail", "not measured")]


def any_failed(gates: list[Gate]) -> bool:
    return bool(failed(gates))
