"""Scoring the reasoning-gym puzzles with reasoning-gym's own scorers.

reasoning-gym ships a ``score_answer(answer, entry)`` for each task it generates; the puzzles in
our data come from it, so its scorer is the reference rule and we call it. Two parts are ours:

- **Extraction.** Its scorers expect the bare final answer (its own prompts ask for
  ``<answer>...</answer>`` tags); a model's output is reasoning followed by an answer, so we
  cut out the final-answer span first (``final_answer_span``). Extraction never decides
  correctness: it only chooses which text reasoning-gym judges.
- **Full credit only.** Its scores are rewards with partial credit (0.3 + 0.7 x share for a
  partly right knights-and-knaves answer, 0.25 for an atomic propositional conclusion, a
  length ratio when the answer merely contains the right one); an answer is *correct* only at
  1.0, the share of partly right answers is not accuracy.

One rule is stricter than reasoning-gym's, on purpose: a propositional-logic conclusion that is
logically equivalent to one of the premises is a restatement, not an inference, and is wrong.
reasoning-gym gives it full credit whenever it is not a tautology, so copying premise 2 back
"solves" most puzzles (tests/unit/test_hostile_outputs.py measures it).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from typing import Any

from curiosity_sft.data.sources.math import last_boxed
from curiosity_sft.evaluation.scorers import Score, strip_think

ANSWER_LINE = re.compile(r"(?:final answer|answer|conclusion)\s*(?:is|:)\s*(.+)", re.I)
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
WRAPPING = " \t*_`\"'“”‘’"
# ASCII spellings people use for reasoning-gym's connectives (its parser reads only these symbols).
ASCII_OPS = (("<->", "↔"), ("<=>", "↔"), ("->", "→"), ("=>", "→"), ("&", "∧"), ("|", "∨"), ("~", "¬"), ("!", "¬"))
# The tasks this module knows how to cut an answer out for; any other reasoning-gym task is
# scored by its scorer on the generic final-answer span.
KNIGHTS_KNAVES, ZEBRA, SYLLOGISM, PROPOSITIONAL = "knights_knaves", "zebra_puzzles", "syllogism", "propositional_logic"


@functools.cache
def rg_scorer(task: str) -> Callable[[str | None, dict[str, Any]], float]:
    """reasoning-gym's ``score_answer`` for ``task`` (a ValueError for a task it does not have)."""
    import reasoning_gym

    return reasoning_gym.get_score_answer_fn(task)


def is_rg_task(task: str | None) -> bool:
    """Whether reasoning-gym generates (and so scores) ``task``."""
    if not task:
        return False
    from reasoning_gym.factory import DATASETS

    return task in DATASETS


def _clean(span: str) -> str:
    return span.strip().strip(WRAPPING).rstrip(".!").strip(WRAPPING).strip()


def final_answer_span(output: str) -> str:
    """The text that states the final answer, in order of how explicitly it is marked.

    ``<answer>`` tags (reasoning-gym's own convention), then the last ``\\boxed{}``, then the
    last "answer is / answer: / conclusion:" line, then the last non-empty line.
    """
    from reasoning_gym.utils import extract_answer

    text = strip_think(output)
    for span in (extract_answer(text), last_boxed(text)):
        if span is not None:
            return _clean(span)
    marked = ANSWER_LINE.findall(text)
    if marked:
        return _clean(marked[-1])
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return _clean(lines[-1]) if lines else ""


def _entry(reference: str | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {"answer": reference, "metadata": metadata or {}}


def _full_credit(task: str, answer: str | None, entry: dict[str, Any]) -> tuple[bool, float]:
    credit = float(rg_scorer(task)(answer, entry)) if answer else 0.0
    return credit == 1.0, credit


# --- knights and knaves ---------------------------------------------------------------------------

def knights_knaves_span(output: str, reference: str) -> str:
    """The final answer of a knights-and-knaves output: a marked answer if there is one, else the
    shortest run of final sentences (or lines) that names every inhabitant.

    A model usually ends with "So A is a knight and B is a knave." after reasoning that mentions
    both roles for each person; judging the whole output would mix hypotheses with the answer.
    """
    from reasoning_gym.logic.knights_knaves import KnightsKnavesDataset
    from reasoning_gym.utils import extract_answer

    text = strip_think(output)
    tagged = extract_answer(text)
    if tagged is not None:
        return tagged.strip()
    names = {n for n, _ in KnightsKnavesDataset._normalize_answer(reference)}
    sentences = [s for s in SENTENCE.split(text) if s.strip()]
    for k in range(1, len(sentences) + 1):
        tail = " ".join(sentences[-k:])
        words = set(re.findall(r"\w+", tail.lower()))
        if names <= words:
            return tail.strip()
    return ""


def _unwrap_roles(span: str) -> str:
    """Markdown and ``Name: role`` / ``Name - role`` wordings in the form reasoning-gym's normaliser
    reads (``Name is role``); the words themselves are left as they are."""
    span = re.sub(r"[*_`]", "", span)
    return re.sub(r"(\w)\s*(?::|=|\s-\s|—|–)\s*(?=\w)", r"\1 is ", span)


def score_knights_knaves(output: str, reference: str) -> Score:
    """reasoning-gym's knights-and-knaves scorer on the final answer; every role must be right."""
    span = _unwrap_roles(knights_knaves_span(output, reference))
    ok, credit = _full_credit(KNIGHTS_KNAVES, span, _entry(reference, None))
    return Score(span or None, ok, credit)


# --- zebra puzzles and syllogisms -----------------------------------------------------------------

def score_zebra(output: str, reference: str) -> Score:
    """reasoning-gym's zebra scorer: the final answer must be exactly the asked value (any case)."""
    span = final_answer_span(output)
    ok, credit = _full_credit(ZEBRA, span, _entry(reference, None))
    return Score(span or None, ok, credit)


def score_syllogism(output: str, reference: str) -> Score:
    """reasoning-gym's scorer (exact "Yes"/"No") on the one yes/no word of the final answer.

    A final answer with both words ("yes or no") or neither has no answer.
    """
    words = {w.capitalize() for w in re.findall(r"\b(yes|no)\b", final_answer_span(output), flags=re.I)}
    answer = words.pop() if len(words) == 1 else None
    ok, credit = _full_credit(SYLLOGISM, answer, _entry(reference, None))
    return Score(answer, ok, credit)


# --- propositional logic --------------------------------------------------------------------------

def _rg_formula(text: str, variables: set[str]) -> Any:
    """reasoning-gym's parse of ``text``, or None unless every atom is one of the puzzle's variables
    (its parser turns any string into an expression, so this is the check that it is a formula)."""
    from reasoning_gym.logic.propositional_logic import Expression

    for ascii_op, symbol in ASCII_OPS:
        text = text.replace(ascii_op, symbol)
    text = text.strip().strip("$`*. ")
    if not text:
        return None
    try:
        expr = Expression.from_string(text)
    except (ValueError, IndexError, RecursionError):
        return None

    def atoms_ok(e: Any) -> bool:
        if not hasattr(e, "operator"):
            return False
        if e.operator is None:
            return isinstance(e.left, str) and e.left in variables
        return atoms_ok(e.left) and (e.right is None or atoms_ok(e.right))

    return expr if atoms_ok(expr) else None


def _equivalent(a: Any, b: Any, variables: list[str]) -> bool:
    return all(a.evaluate(env) == b.evaluate(env) for env in
               (dict(zip(variables, vals, strict=True)) for vals in itertools.product([False, True], repeat=len(variables))))


def propositional_conclusion(output: str, variables: set[str]) -> str | None:
    """The conclusion: a tagged/boxed/"conclusion:" answer, else the last line that is a formula."""
    from reasoning_gym.utils import extract_answer

    text = strip_think(output)
    marked = [s for s in (extract_answer(text), last_boxed(text)) if s is not None]
    candidates = marked[:1] or [ln.split(":")[-1] for ln in reversed(text.splitlines()) if ln.strip()]
    for cand in candidates:
        if _rg_formula(cand, variables) is not None:
            for ascii_op, symbol in ASCII_OPS:
                cand = cand.replace(ascii_op, symbol)
            return cand.strip().strip("$`*. ")
    return None


def score_propositional(output: str, metadata: dict[str, Any]) -> Score:
    """reasoning-gym's scorer (entailed by the premises, not a tautology, only the puzzle's
    variables), and not equivalent to any single premise (ours: a restatement infers nothing)."""
    variables = set(metadata.get("variables") or [])
    premises = [str(p) for p in metadata.get("premises") or []]
    conclusion = propositional_conclusion(output, variables)
    if conclusion is None or not premises:
        return Score(conclusion, False, 0.0)
    ok, credit = _full_credit(PROPOSITIONAL, conclusion, _entry(None, {**metadata, "variables": sorted(variables)}))
    if ok:
        expr = _rg_formula(conclusion, variables)
        parsed = [_rg_formula(p, variables) for p in premises]
        if any(p is not None and _equivalent(expr, p, sorted(variables)) for p in parsed):
            return Score(conclusion, False, credit, "restates a premise")
    return Score(conclusion, ok, credit)


def score_reasoning_gym(task: str, output: str, reference: str | None, metadata: dict[str, Any] | None) -> Score:
    """Any reasoning-gym task: the four in our data with their own extraction, others on the final span."""
    if task == PROPOSITIONAL:
        return score_propositional(output, metadata or {})
    if reference is None:
        return Score(None, False, 0.0)
    if task == KNIGHTS_KNAVES:
        return score_knights_knaves(output, reference)
    if task == ZEBRA:
        return score_zebra(output, reference)
    if task == SYLLOGISM:
        return score_syllogism(output, reference)
    span = final_answer_span(output)
    ok, credit = _full_credit(task, span, _entry(reference, metadata))
    return Score(span or None, ok, credit)
