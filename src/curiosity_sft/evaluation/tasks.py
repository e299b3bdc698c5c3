"""What ``--tasks`` can ask for, and which scorer judges each generated example.

An example's ``source`` (and, for logic puzzles, ``meta.task``) picks its scorer, so a mixed
validation set is scored per source with the right rule for each.
"""

from __future__ import annotations

from curiosity_sft.data.schema import Example
from curiosity_sft.evaluation.logic_scorers import score_logic
from curiosity_sft.evaluation.scorers import Score, normalize_number, score_gsm8k, score_math

TASKS = ("perplexity", "bleu", "accuracy")


def parse_tasks(spec: str | None) -> tuple[str, ...]:
    """``"perplexity,accuracy"`` -> the tasks in canonical order; None or "all" -> every task."""
    if spec is None or spec == "all":
        return TASKS
    asked = {t.strip() for t in spec.split(",") if t.strip()}
    unknown = asked - set(TASKS)
    if unknown:
        from curiosity_sft.errors import UserError

        raise UserError(f"unknown task(s) {sorted(unknown)}", fix=f"choose from {', '.join(TASKS)} or all")
    return tuple(t for t in TASKS if t in asked)


def is_scorable(ex: Example) -> bool:
    """A chat example with something to check the answer against (propositional logic: its premises)."""
    return ex.messages is not None and (ex.answer is not None or bool(ex.meta.get("premises")))


def score_example(ex: Example, output: str) -> dict[str, Score]:
    """{"accuracy": ...} and, for GSM8K, also {"strict": ...}; "accuracy" is the headline (flexible)."""
    if ex.source == "gsm8k":
        return {"accuracy": score_gsm8k(output, ex.answer or ""), "strict": score_gsm8k(output, ex.answer or "", True)}
    if ex.source == "math":
        return {"accuracy": score_math(output, ex.answer or "")}
    if ex.source == "logic":
        return {"accuracy": score_logic(output, ex.answer, str(ex.meta.get("task", "")), ex.meta.get("premises"))}
    reference = ex.answer or ""
    if normalize_number(reference) is not None:
        return {"accuracy": score_gsm8k(output, reference)}
    return {"accuracy": score_logic(output, reference, "")}
