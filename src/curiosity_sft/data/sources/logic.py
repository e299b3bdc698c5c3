"""Logic puzzles: reasoning-gym JSONL (``task``/``question``/``answer``/``params``) and Logic-RL
knights-and-knaves (``quiz``/``solution_text``/``names``).

Difficulty is the puzzle's size from its generator parameters: people in a knights-and-knaves
puzzle (2 -> 0), people x attributes in a zebra puzzle (3x3 -> 0, 4x4 -> 1), and for
propositional logic the premises, variables and connectives per premise, each within the ranges
its metadata states (not ``metadata.complexity``: that measures the example answer, one of many
valid conclusions, not the puzzle). Syllogisms have no size: no difficulty, and the reason says so.
"""

from __future__ import annotations

from curiosity_sft.data.schema import DIFFICULTY_REASON, Example, chat, stable_id
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError

LOGIC_RL_MAX_PEOPLE = 8  # Logic-RL's knights-and-knaves sets go from 2 to 8 people
CONNECTIVES = "∧∨→↔¬"


def matches(rec: dict) -> bool:
    return "task" in rec and "question" in rec and "answer" in rec


def matches_logic_rl(rec: dict) -> bool:
    return "quiz" in rec and "solution_text" in rec


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def difficulty(rec: dict) -> float | None:
    """Puzzle size from its generator parameters, scaled to [0, 1] within the task's usual range."""
    p = rec.get("params") or {}
    if "n_people" in p:
        return _clip((p["n_people"] - 2) / 3)
    if "num_people" in p:
        return _clip((p["num_people"] * p.get("num_characteristics", p["num_people"]) - 9) / 7)
    meta = rec.get("metadata") or {}
    ranges = meta.get("difficulty") if isinstance(meta, dict) else None
    if isinstance(ranges, dict) and isinstance(meta.get("premises"), list):
        # propositional logic: how many premises and variables, and how big each premise is
        premises = [p for p in meta["premises"] if isinstance(p, str)]
        depth = ranges.get("complexity")
        parts = [(len(premises), ranges.get("statements"))]
        if isinstance(meta.get("variables"), list):
            parts.append((len(meta["variables"]), ranges.get("vars")))
        if premises and isinstance(depth, list) and len(depth) == 2 and isinstance(depth[1], int):
            # a premise of operator depth d has at most 2^(d-1) - 1 connectives
            size = sum(p.count(c) for p in premises for c in CONNECTIVES) / len(premises)
            parts.append((size, [0, 2 ** (depth[1] - 1) - 1]))
        scaled = [_clip((v - r[0]) / (r[1] - r[0])) for v, r in parts
                  if isinstance(r, list) and len(r) == 2 and r[1] > r[0]]
        return sum(scaled) / len(scaled) if scaled else None
    return None


def scoring_meta(rec: dict) -> dict:
    """``task`` (reasoning-gym's task name) and reasoning-gym's own ``metadata`` for the record.

    Its scorers read that metadata (propositional logic: the premises and variables, since the
    puzzle has no unique answer), so a prepared file can be scored without the raw file.
    """
    meta: dict = {"task": str(rec.get("task", "logic"))}
    if isinstance(rec.get("metadata"), dict):
        meta["reasoning_gym"] = rec["metadata"]
    return meta


def to_examples(rec: dict, where: str, line: int | None, opts: SourceOptions) -> list[Example]:
    q, a = rec.get("question"), rec.get("answer")
    meta = rec.get("metadata") or {}
    # Propositional-logic puzzles have many valid conclusions: reasoning-gym leaves `answer`
    # null and gives one in metadata.example_answer. Train on it; it is not a unique key to score by.
    unique = a is not None
    if a is None and isinstance(meta, dict):
        a = meta.get("example_answer")
    if not isinstance(q, str):
        raise DataError("logic record needs a string `question`", where=where, line=line)
    if not isinstance(a, str | int | float) or isinstance(a, bool):
        raise DataError("logic record needs a string or number `answer`", where=where, line=line)
    source = opts.source_name or "logic"
    level = difficulty(rec)
    task = str(rec.get("task", "logic"))
    why = {} if level is not None else {DIFFICULTY_REASON: f"`{task}` puzzles carry no size parameter"}
    return [Example(id=stable_id(source, q), source=source, messages=chat(q.strip(), str(a).strip()),
                    answer=str(a).strip() if unique else None, difficulty=level,
                    meta={**scoring_meta(rec), **why})]


def logic_rl_to_examples(rec: dict, where: str, line: int | None, opts: SourceOptions) -> list[Example]:
    quiz, sol = rec.get("quiz"), rec.get("solution_text")
    if not isinstance(quiz, str) or not isinstance(sol, str):
        raise DataError("Logic-RL record needs string `quiz` and `solution_text`", where=where, line=line)
    names = rec.get("names")
    n = len(names) if isinstance(names, list) else None
    source = opts.source_name or "logic"
    return [Example(id=stable_id(source, quiz), source=source, messages=chat(quiz.strip(), sol.strip()),
                    answer=sol.strip(), difficulty=None if n is None else _clip((n - 2) / (LOGIC_RL_MAX_PEOPLE - 2)),
                    meta={"task": "knights_knaves", "people": n})]
