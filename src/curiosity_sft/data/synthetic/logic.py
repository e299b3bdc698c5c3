"""Knights-and-knaves puzzles in the reasoning-gym ``knights_knaves`` record layout.

Statements have depth 2 and width 2 (a claim about one person, or two such claims joined by
and / or / if-then / iff), like reasoning-gym's default. A puzzle is only kept when a brute-force
search over all 2^n assignments finds exactly one consistent world: an ambiguous puzzle would
reward a model for guessing.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

# (truth-teller, liar) pairs; the article matters for the answer text ("an angel", "a devil").
TERMS = (("knight", "knave"), ("saint", "sinner"), ("altruist", "egoist"), ("angel", "devil"),
         ("hero", "villain"), ("sage", "fool"), ("pioneer", "laggard"))
NAMES = ("Aiden", "Beatrice", "Caleb", "Daphne", "Elijah", "Fiona", "Gabriel", "Hazel", "Isaac", "Julia",
         "Kai", "Leah", "Mateo", "Nora", "Oscar", "Penelope", "Rosa", "Silas", "Tessa", "Vincent",
         "Willa", "Xavier", "Yara", "Zane")
_OPS = ("and", "or", "if", "iff")
_SPEECH = (
    'In a statement by {n}: "{s}".', '{n} said, "{s}."', '{n} asserted: "{s}".', '{n} was heard saying, "{s}".',
    '{n} stated, "{s}".', '{n} remarked, "{s}".', '{n} commented, "{s}".', '{n} noted, "{s}".',
    'According to {n}, "{s}".', 'As {n} put it, "{s}".', '"{s}," {n} declared.', '"{s}," {n} mentioned.',
    '"{s}," {n} claimed.', '{n} expressed that {s}.', '{n} told you that {s}.', '"{s}" - {n}.',
    "In {n}'s words: \"{s}\".",
)

# A claim is (person index, claims-truth-teller); a statement is a claim or (op, claim, claim).
Claim = tuple[int, bool]
Statement = Claim | tuple[str, Claim, Claim]


def _article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def terms_dict(knight: str, knave: str) -> dict[str, str]:
    """The ``metadata.knight_knave_terms`` block reasoning-gym stores with each puzzle."""
    return {"knight": knight, "knave": knave, "a_knight": _article(knight), "a_knave": _article(knave),
            "Knight": knight.capitalize(), "Knave": knave.capitalize()}


def holds(stmt: Statement, world: tuple[bool, ...]) -> bool:
    """Truth of a statement in a world where ``world[i]`` says person i tells the truth."""
    if isinstance(stmt[0], int):
        who, claim = stmt
        return world[who] == claim
    op, left, right = stmt
    a, b = holds(left, world), holds(right, world)
    return {"and": a and b, "or": a or b, "if": (not a) or b, "iff": a == b}[op]


def solutions(statements: list[Statement]) -> list[tuple[bool, ...]]:
    """Every world where truth-tellers say true things and liars false ones."""
    n = len(statements)
    return [w for w in itertools.product((True, False), repeat=n)
            if all(holds(s, w) == w[i] for i, s in enumerate(statements))]


def _random_statement(rng: random.Random, n: int) -> Statement:
    def claim() -> Claim:
        return rng.randrange(n), rng.random() < 0.5
    if rng.random() < 0.35:
        return claim()
    left, right = claim(), claim()
    while right == left:  # "A is a knight and A is a knight" says nothing twice
        right = claim()
    return rng.choice(_OPS), left, right


def _say(stmt: Statement, names: list[str], t: dict[str, str]) -> str:
    if isinstance(stmt[0], int):
        who, claim = stmt
        return f"{names[who]} is {t['a_knight'] if claim else t['a_knave']}"
    op, left, right = stmt
    a, b = _say(left, names, t), _say(right, names, t)
    return {"and": f"{a} and {b}", "or": f"{a} or {b}", "if": f"if {a} then {b}",
            "iff": f"{a} if and only if {b}"}[op]


def _listing(parts: list[str]) -> str:
    return ", ".join(parts[:-1]) + ", and " + parts[-1]


def knights_knaves_puzzle(rng: random.Random, n_people: int | None = None, index: int = 0) -> dict[str, Any]:
    """One puzzle with a unique solution, as a reasoning-gym record; ``index`` is ``source_index``."""
    n = n_people if n_people is not None else rng.randint(2, 4)
    names = rng.sample(NAMES, n)
    t = terms_dict(*rng.choice(TERMS))
    while True:
        statements = [_random_statement(rng, n) for _ in range(n)]
        found = solutions(statements)
        if len(found) == 1:
            break
    speech = " ".join(rng.choice(_SPEECH).format(n=name, s=_say(s, names, t)) for name, s in zip(names, statements, strict=True))
    knight, knave = t["knight"], t["knave"]
    question = (
        f"A very special island is inhabited only by {knight}s and {knave}s. {t['Knight']}s always tell the "
        f"truth, and {knave}s always lie. You meet {n} inhabitants: {_listing(names)}. {speech} "
        f"So who is {t['a_knight']} and who is {t['a_knave']}? (Format your answer like: "
        f"\"{_listing([f'{name} is a {knight}/{knave}' for name in names])}\")"
    )
    answer = _listing([f"{name} is {t['a_knight'] if truthful else t['a_knave']}"
                       for name, truthful in zip(names, found[0], strict=True)]) + "."
    params = {"n_people": n, "depth_constraint": 2, "width_constraint": 2}
    return {"task": "knights_knaves", "params": params, "question": question, "answer": answer,
            "metadata": {"source_index": index, "names": names, "knight_knave_terms": t, "difficulty": dict(params)}}
