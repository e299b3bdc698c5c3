"""Scoring the reasoning-gym logic puzzles: knights and knaves, zebra, syllogisms, propositional logic.

Each task has its own notion of "right": a knights-and-knaves answer is right when every person
gets the right role, in any order and wording; a propositional-logic answer is right when the
stated conclusion follows from the premises (there are many valid conclusions, so reasoning-gym
gives none to match against), which a truth table over the few variables decides exactly.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

from curiosity_sft.data.sources.math import last_boxed
from curiosity_sft.evaluation.scorers import Score, strip_think

ROLE_CLAIM = r"\b{name}\b\s*(?:is|was|:|-|=|must be|would be)\s*(?:an?\s+)?(\w+)"


def score_knights_knaves(output: str, reference: str) -> Score:
    """``reference`` is reasoning-gym's ``"A is a knight, and B is a knave."``; the last claim per person counts."""
    text = strip_think(output)
    want = {n: r.lower() for n, r in re.findall(r"(\w+) is an? (\w+)", reference)}
    got = {}
    for name in want:
        claims = re.findall(ROLE_CLAIM.format(name=re.escape(name)), text, flags=re.I)
        if claims:
            got[name] = claims[-1].lower()
    extracted = ", ".join(f"{n} is {r}" for n, r in got.items()) or None
    return Score(extracted, bool(want) and all(got.get(n) == r for n, r in want.items()))


def _final_line(text: str) -> str:
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    m = re.findall(r"(?:final answer|answer)\s*(?:is|:)\s*(.+)", text, flags=re.I)
    if m:
        return m[-1]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def score_zebra(output: str, reference: str) -> Score:
    """The asked-for value (a name, a pet...) as a whole word in the final answer line."""
    final = _final_line(strip_think(output)).strip()
    ok = re.search(rf"\b{re.escape(reference.strip())}\b", final, flags=re.I) is not None
    return Score(final or None, ok)


def score_yes_no(output: str, reference: str) -> Score:
    """Syllogisms: the last standalone yes/no in the output."""
    words = re.findall(r"\b(yes|no)\b", strip_think(output), flags=re.I)
    got = words[-1].capitalize() if words else None
    return Score(got, got is not None and got.lower() == reference.strip().lower())


# --- propositional logic -------------------------------------------------------------------------

OPS = {"¬": "not", "~": "not", "!": "not", "∧": "and", "&": "and", "∨": "or", "|": "or",
       "→": "imp", "->": "imp", "=>": "imp", "↔": "iff", "<->": "iff", "<=>": "iff"}
TOKEN = re.compile(r"\s*(<->|<=>|->|=>|[¬~!∧&∨|→↔()]|[A-Z]\w*)")
Formula = Callable[[dict[str, bool]], bool]


def parse_formula(text: str) -> tuple[Formula, set[str]]:
    """A formula in reasoning-gym's notation (``¬ ∧ ∨ → ↔``, ASCII accepted) -> (evaluator, variables).

    Precedence from tight to loose: ¬, ∧, ∨, →, ↔; → and ↔ associate to the right. Raises
    ValueError on anything else.
    """
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"unexpected {text[pos:pos + 10]!r}")
        tokens.append(OPS.get(m.group(1), m.group(1)))
        pos = m.end()
    variables: set[str] = set()
    i = 0

    def peek() -> str | None:
        return tokens[i] if i < len(tokens) else None

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise ValueError("formula ends early")
        i += 1
        return tokens[i - 1]

    def binary(op: str, sub: Callable[[], Formula], fn: Callable[[bool, bool], bool], right: bool) -> Formula:
        left = sub()
        while peek() == op:
            take()
            rhs = binary(op, sub, fn, right) if right else sub()
            left = (lambda a, b: lambda v: fn(a(v), b(v)))(left, rhs)
            if right:
                break
        return left

    def atom() -> Formula:
        t = take()
        if t == "not":
            inner = atom()
            return lambda v: not inner(v)
        if t == "(":
            f = iff()
            if take() != ")":
                raise ValueError("unbalanced parentheses")
            return f
        if not re.fullmatch(r"[A-Z]\w*", t):
            raise ValueError(f"unexpected {t!r}")
        variables.add(t)
        return lambda v: v[t]

    def conj() -> Formula:
        return binary("and", atom, lambda a, b: a and b, False)

    def disj() -> Formula:
        return binary("or", conj, lambda a, b: a or b, False)

    def imp() -> Formula:
        return binary("imp", disj, lambda a, b: (not a) or b, True)

    def iff() -> Formula:
        return binary("iff", imp, lambda a, b: a == b, True)

    if not tokens:
        raise ValueError("empty formula")
    f = iff()
    if i != len(tokens):
        raise ValueError(f"trailing {tokens[i]!r}")
    return f, variables


def entails(premises: list[str], conclusion: str) -> bool:
    """True when every assignment that makes all premises true makes the conclusion true."""
    parsed = [parse_formula(p) for p in premises]
    concl, cvars = parse_formula(conclusion)
    names = sorted(cvars.union(*(v for _, v in parsed)))
    for values in itertools.product([False, True], repeat=len(names)):
        env = dict(zip(names, values, strict=True))
        if all(p(env) for p, _ in parsed) and not concl(env):
            return False
    return True


def score_propositional(output: str, premises: list[str]) -> Score:
    """The last line that parses as a formula is the conclusion; right when the premises entail it."""
    text = strip_think(output)
    candidates = [last_boxed(text) or ""] + [ln.split(":")[-1] for ln in reversed(text.splitlines())]
    for cand in candidates:
        cand = cand.strip().strip("$`*. ")
        try:
            parse_formula(cand)
        except ValueError:
            continue
        try:
            return Score(cand, entails(premises, cand))
        except ValueError:  # a premise we cannot parse: the example cannot be scored
            return Score(cand, False)
    return Score(None, False)


def score_logic(output: str, reference: str | None, task: str, premises: list[str] | None = None) -> Score:
    if task == "propositional_logic":
        return score_propositional(output, premises or [])
    if reference is None:
        return Score(None, False)
    if task == "knights_knaves" or re.search(r"\w+ is an? \w+", reference):
        return score_knights_knaves(output, reference)
    if task == "syllogism" or reference.strip().lower() in ("yes", "no"):
        return score_yes_no(output, reference)
    return score_zebra(output, reference)
