"""Quality gates: the handful of numbers that decide whether a checkpoint moves on.

Thresholds come from the config (``gate_*`` keys, defaulting to the seed's targets). A gate
whose metric was not measured (its task not asked for, no GSM8K examples) is reported as such,
never as a pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Gate:
    name: str
    metric: str
    value: float | None
    op: str  # "<" or ">"
    threshold: float
    status: str  # "pass", "fail" or "not measured"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gate(name: str, metric: str, value: float | None, op: str, threshold: float) -> Gate:
    if value is None:
        return Gate(name, metric, None, op, threshold, "not measured")
    ok = value < threshold if op == "<" else value > threshold
    return Gate(name, metric, value, op, threshold, "pass" if ok else "fail")


def check_gates(results: dict[str, Any], max_perplexity: float, min_bleu: float, min_gsm8k: float) -> list[Gate]:
    """Perplexity (overall), BLEU (0-1 scale) and GSM8K accuracy (flexible extraction) against thresholds."""
    ppl = results.get("perplexity", {}).get("overall", {}).get("perplexity")
    bleu = results.get("bleu", {}).get("overall", {}).get("bleu_01")
    gsm = results.get("accuracy", {}).get("gsm8k", {}).get("accuracy")
    return [_gate("perplexity", "perplexity.overall.perplexity", ppl, "<", max_perplexity),
            _gate("BLEU", "bleu.overall.bleu_01", bleu, ">", min_bleu),
            _gate("GSM8K accuracy", "accuracy.gsm8k.accuracy", gsm, ">", min_gsm8k)]


def any_failed(gates: list[Gate]) -> bool:
    return any(g.status == "fail" for g in gates)
