"""What ``--tasks`` can ask for, and which scorer judges each generated example.

The scorer is chosen by what an example *is*, ``meta["task"]``, which ``prepare`` records on every
example (docs/DATA.md): ``gsm8k``, ``math``, a reasoning-gym task name, ``book_text`` /
``book_continuation``. Never by ``source``, a label the user may rename in a data config: a GSM8K
source called ``grade_school`` keeps GSM8K's scorer and gate. An example without a task (generic
data) is scored by its answer's shape: a number by value, anything else by exact match.
"""

from __future__ import annotations

import re

from curiosity_sft.data.schema import Example
from curiosity_sft.evaluation.logic_scorers import (
    PROPOSITIONAL,
    final_answer_span,
    is_rg_task,
    score_reasoning_gym,
)
from curiosity_sft.evaluation.scorers import Score, normalize_number, score_gsm8k, score_math

TASKS = ("perplexity", "bleu", "accuracy")
GSM8K, MATH = "gsm8k", "math"


def parse_tasks(spec: str | None) -> tuple[str, ...]:
    """``"perplexity,accuracy"`` -> the tasks in canonical order; None or "all" -> every task."""
    if spec is None or spec == "all":
        return TASKS
    asked = {t.strip() for t in spec.split(",") if t.strip()}
    unknown = asked - set(TASKS)
    if unknown or not asked:
        from curiosity_sft.errors import UserError

        raise UserError(f"unknown task(s) {sorted(unknown) or [spec]}", fix=f"choose from {', '.join(TASKS)} or all")
    return tuple(t for t in TASKS if t in asked)


def task_of(ex: Example) -> str | None:
    """The example's task format (contract: ``meta["task"]``), or None for generic data."""
    task = ex.meta.get("task")
    return str(task) if task else None


def rg_metadata(ex: Example) -> dict:
    """reasoning-gym's metadata for the puzzle, kept in ``meta`` by ``prepare`` (data/sources/logic.py)."""
    md = ex.meta.get("reasoning_gym")
    return md if isinstance(md, dict) else {}


def is_scorable(ex: Example) -> bool:
    """A chat example with something to check the answer against (propositional logic: its premises)."""
    if ex.messages is None:
        return False
    if task_of(ex) == PROPOSITIONAL:
        return bool(rg_metadata(ex).get("premises"))
    return ex.answer is not None


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _exact(output: str, reference: str) -> Score:
    """The final answer equals the reference, ignoring case and spacing."""
    span = final_answer_span(output)
    return Score(span or None, bool(span) and _normalised(span) == _normalised(reference))


def score_example(ex: Example, output: str) -> dict[str, Score]:
    """{"accuracy": ...} and, for GSM8K, also {"strict": ...}; "accuracy" is the headline (flexible)."""
    task, reference = task_of(ex), ex.answer or ""
    if task == GSM8K:
        return {"accuracy": score_gsm8k(output, reference), "strict": score_gsm8k(output, reference, True)}
    if task == MATH:
        return {"accuracy": score_math(output, reference)}
    if is_rg_task(task):
        assert task is not None
        return {"accuracy": score_reasoning_gym(task, output, ex.answer, rg_metadata(ex))}
    if normalize_number(reference) is not None:
        return {"accuracy": score_gsm8k(output, reference)}
    return {"accuracy": _exact(output, reference)}
