"""The embedded demo data: deterministic, in the real formats, and every answer independently right.

The checks here deliberately re-derive answers from the *text* of each problem (parsing the
annotations, the LaTeX, the puzzle statements) instead of reusing the generators' helpers, so a
bug shared by generator and check cannot hide itself.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import math
import operator
import random
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
import sympy
from latex2sympy2_extended import latex2sympy

from curiosity_sft.data.synthetic import (
    BOOKS,
    gsm8k_problem,
    knights_knaves_puzzle,
    math_problem,
    write_raw_dataset,
)
from curiosity_sft.data.synthetic.gsm8k import TEMPLATES
from curiosity_sft.data.synthetic.stories import STORIES

SMALL = {"n_gsm8k": 60, "n_math": 60, "n_logic": 30, "n_test": 20}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("raw")
    return root, write_raw_dataset(root, seed=7, **SMALL)


def test_same_seed_same_bytes_and_different_seed_differs(raw, tmp_path: Path) -> None:
    root, _ = raw
    write_raw_dataset(tmp_path / "again", seed=7, **SMALL)
    write_raw_dataset(tmp_path / "other", seed=8, **SMALL)
    assert _digests(tmp_path / "again") == _digests(root)
    other = _digests(tmp_path / "other")
    assert other.keys() == _digests(root).keys()
    for name in ("gsm8k/train.jsonl", "math/train.jsonl", "logic_puzzles/logic_puzzles.jsonl"):
        assert other[name] != _digests(root)[name]
    assert not list(root.rglob("*.tmp"))


def test_counts_and_layout(raw) -> None:
    root, counts = raw
    expected = {"gsm8k/train.jsonl": 60, "gsm8k/test.jsonl": 20, "math/train.jsonl": 60, "math/test.jsonl": 20,
                "logic_puzzles/logic_puzzles.jsonl": 30}
    expected |= {f"children_books/{stem}.txt": size for stem, size in BOOKS}
    assert counts == expected
    for rel, n in counts.items():
        if rel.endswith(".jsonl"):
            assert len(_rows(root / rel)) == n


def test_exact_keys_and_no_train_test_overlap(raw) -> None:
    root, _ = raw
    for name, keys, text in (("gsm8k", {"question", "answer"}, "question"),
                             ("math", {"problem", "level", "type", "solution"}, "problem")):
        train, test = _rows(root / name / "train.jsonl"), _rows(root / name / "test.jsonl")
        assert all(set(r) == keys for r in train + test)
        all_texts = [r[text] for r in train + test]
        assert len(set(all_texts)) == len(all_texts)
    for r in _rows(root / "logic_puzzles" / "logic_puzzles.jsonl"):
        assert set(r) == {"task", "params", "question", "answer", "metadata"}
        assert set(r["metadata"]) == {"source_index", "names", "knight_knave_terms", "difficulty"}
        assert r["task"] == "knights_knaves" and r["metadata"]["difficulty"] == r["params"]


# --- GSM8K -----------------------------------------------------------------------------------

_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _calc(expr: str) -> Fraction:
    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            return _ARITH[type(node.op)](ev(node.left), ev(node.right))
        raise AssertionError(f"not plain arithmetic: {expr!r}")
    return ev(ast.parse(expr, mode="eval").body)


def _check_gsm8k(rec: dict) -> None:
    lines = rec["answer"].split("\n")
    final = re.fullmatch(r"#### (\d+)", lines[-1])
    assert final, lines[-1]
    known = {int(n) for n in re.findall(r"\d+", rec["question"])} | set(range(13)) | {100}
    last = None
    assert 2 <= len(lines) - 1 <= 4
    for line in lines[:-1]:
        m = re.search(r"(\d[\d+\-*/ ]*) = \$?<<([^=]+)=(\d+)>>(\d+)", line)
        assert m, line
        shown, expr, result, text = m.groups()
        assert shown.replace(" ", "") == expr and result == text
        assert _calc(expr) == int(result), line
        assert all(int(n) in known for n in re.findall(r"\d+", expr)), f"unexplained number in {line!r}"
        known.add(int(result))
        last = int(result)
    assert int(final.group(1)) == last


def test_gsm8k_files_annotations_verify(raw) -> None:
    root, _ = raw
    for split in ("train", "test"):
        for rec in _rows(root / "gsm8k" / f"{split}.jsonl"):
            _check_gsm8k(rec)


def test_gsm8k_every_template_verifies() -> None:
    assert len(TEMPLATES) >= 8
    rng = random.Random(123)
    for template in TEMPLATES:
        for _ in range(30):
            question, answer = template(rng)
            _check_gsm8k({"question": question, "answer": answer})
    for _ in range(100):
        _check_gsm8k(gsm8k_problem(rng))


# --- MATH ------------------------------------------------------------------------------------

def _boxed(text: str) -> str:
    i = text.rindex("\\boxed{") + len("\\boxed{")
    depth, j = 1, i
    while depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i:j - 1]


def _solve_math(problem: str) -> sympy.Expr:
    """Re-solve a problem from its statement alone; fails on any statement shape it does not know."""
    x = sympy.Symbol("x")
    if m := re.match(r"Solve for \$x\$: \$(.+?)\$\.", problem):
        (sol,) = sympy.solve(latex2sympy(m[1]), x)
        return sol
    if m := re.match(r"If \$f\(x\) = (.+?)\$, what is the value of \$f\((-?\d+)\)\$\?", problem):
        return latex2sympy(m[1]).subs(x, int(m[2]))
    if m := re.match(r"What is the (sum|product) of all values of \$x\$ that satisfy \$(.+?)\$\?", problem):
        roots = sympy.solve(latex2sympy(m[2]), x)
        return sum(roots) if m[1] == "sum" else sympy.Mul(*roots)
    if m := re.match(r"If \$(.+?)\$ and \$(.+?)\$, what is the value of \$(.+?)\$\?", problem):
        eqs = [latex2sympy(m[1]), latex2sympy(m[2])]
        (sol,) = sympy.solve(eqs, dict=True)
        return latex2sympy(m[3]).subs(sol)
    if m := re.match(r"(?:Compute|Simplify) \$(.+?)\$\.", problem):
        return latex2sympy(m[1])
    if m := re.match(r"What is \$(\d+)\\%\$ of \$(\d+)\$\?", problem):
        return sympy.Rational(int(m[1]) * int(m[2]), 100)
    if m := re.match(r"What is the (greatest common divisor|least common multiple) of \$(\d+)\$ and \$(\d+)\$\?", problem):
        return (math.gcd if m[1].startswith("greatest") else math.lcm)(int(m[2]), int(m[3]))
    if m := re.match(r"How many positive divisors does \$(\d+)\$ have\?", problem):
        return sum(1 for d in range(1, int(m[1]) + 1) if int(m[1]) % d == 0)
    if m := re.match(r"What is the remainder when \$(\d+)\^\{(\d+)\}\$ is divided by \$(\d+)\$\?", problem):
        return int(m[1]) ** int(m[2]) % int(m[3])
    if m := re.match(r"In how many ways can a committee of \$(\d+)\$ people be chosen from a group of \$(\d+)\$", problem):
        return sympy.binomial(int(m[2]), int(m[1]))
    if m := re.match(r"A bag contains \$(\d+)\$ red marbles, \$(\d+)\$ blue marbles, and \$(\d+)\$ green .*"
                     r"probability that it is (red|not blue)\?", problem):
        r, b, g = int(m[1]), int(m[2]), int(m[3])
        return sympy.Rational(r if m[4] == "red" else r + g, r + b + g)
    if m := re.match(r"How many distinct arrangements of the letters in the word ([A-Z]+) are there\?", problem):
        return len(set(itertools.permutations(m[1]))) if len(m[1]) <= 8 else \
            sympy.factorial(len(m[1])) / sympy.Mul(*(sympy.factorial(c) for c in Counter(m[1]).values()))
    if m := re.match(r"Two fair six-sided dice .* is (at least )?\$(\d+)\$\?", problem):
        s = int(m[2])
        hits = sum(1 for i in range(1, 7) for j in range(1, 7) if (i + j >= s if m[1] else i + j == s))
        return sympy.Rational(hits, 36)
    raise AssertionError(f"no independent solver for: {problem}")


def _check_math(rec: dict) -> None:
    assert rec["level"] in {f"Level {i}" for i in range(1, 6)}
    assert rec["type"] in {"Algebra", "Prealgebra", "Number Theory", "Counting & Probability"}
    boxed = latex2sympy(_boxed(rec["solution"]))
    assert sympy.simplify(boxed - _solve_math(rec["problem"])) == 0, rec


def test_math_files_boxed_answers_verify(raw) -> None:
    root, _ = raw
    for split in ("train", "test"):
        for rec in _rows(root / "math" / f"{split}.jsonl"):
            _check_math(rec)


def test_math_generator_alone_covers_all_types_and_levels() -> None:
    rng = random.Random(99)
    recs = [math_problem(rng) for _ in range(150)]
    for rec in recs:
        _check_math(rec)
    assert {r["type"] for r in recs} == {"Algebra", "Prealgebra", "Number Theory", "Counting & Probability"}
    assert {r["level"] for r in recs} == {f"Level {i}" for i in range(1, 6)}


# --- Knights and knaves ----------------------------------------------------------------------

def _brute_force(rec: dict) -> list[dict[str, bool]]:
    """All consistent worlds, read from the question text alone."""
    terms, names = rec["metadata"]["knight_knave_terms"], rec["metadata"]["names"]
    claim = re.compile(rf"\b({'|'.join(names)}) is ({terms['a_knight']}|{terms['a_knave']})\b")
    body = rec["question"].split(" inhabitants: ", 1)[1].split(". ", 1)[1].rsplit(" So who is ", 1)[0]
    said: dict[str, tuple[bool, str]] = {}  # speaker -> (is "if ... then ...", statement text)
    for sentence in re.split(r'(?:(?<=\.)|(?<=\."))\s+', body):
        found = list(claim.finditer(sentence))
        assert found, sentence
        first, last = found[0].start(), found[-1].end()
        is_if = sentence[:first].endswith("if ")
        rest = sentence[:first - 3 if is_if else first] + sentence[last:]
        (speaker,) = re.findall(rf"\b({'|'.join(names)})\b", rest)
        said[speaker] = (is_if, sentence[first:last])
    assert sorted(said) == sorted(names), said

    def lit(text: str, world: dict[str, bool]) -> bool:
        m = claim.fullmatch(text)
        assert m, text
        return world[m[1]] == (m[2] == terms["a_knight"])

    def truth(is_if: bool, text: str, world: dict[str, bool]) -> bool:
        if is_if:
            left, right = text.split(" then ")
            return (not lit(left, world)) or lit(right, world)
        for op, fn in ((" if and only if ", operator.eq), (" and ", operator.and_), (" or ", operator.or_)):
            if op in text:
                left, right = text.split(op)
                return fn(lit(left, world), lit(right, world))
        return lit(text, world)

    worlds = [dict(zip(names, bits, strict=True)) for bits in itertools.product((True, False), repeat=len(names))]
    return [w for w in worlds if all(truth(*said[n], w) == w[n] for n in names)]


def _check_logic(rec: dict) -> None:
    n = rec["params"]["n_people"]
    assert 2 <= n <= 4 and len(rec["metadata"]["names"]) == n
    (world,) = _brute_force(rec)
    terms = rec["metadata"]["knight_knave_terms"]
    parts = [f"{name} is {terms['a_knight'] if world[name] else terms['a_knave']}" for name in rec["metadata"]["names"]]
    assert rec["answer"] == ", ".join(parts[:-1]) + ", and " + parts[-1] + "."
    assert rec["question"].startswith(f"A very special island is inhabited only by {terms['knight']}s and ")


def test_logic_file_puzzles_have_unique_solutions(raw) -> None:
    root, _ = raw
    recs = _rows(root / "logic_puzzles" / "logic_puzzles.jsonl")
    for rec in recs:
        _check_logic(rec)
    assert {r["params"]["n_people"] for r in recs} == {2, 3, 4}


def test_logic_generator_alone() -> None:
    rng = random.Random(5)
    for _ in range(150):
        _check_logic(knights_knaves_puzzle(rng))


# --- Stories and books -----------------------------------------------------------------------

def test_stories_count_and_length() -> None:
    assert len(STORIES) >= 36 and len({t for t, _ in STORIES}) == len(STORIES)
    for title, text in STORIES:
        assert 80 <= len(text.split()) <= 200, title
    assert sum(size for _, size in BOOKS) == len(STORIES)


def test_books_are_gutenberg_style_chapters(raw) -> None:
    root, _ = raw
    start = 0
    for stem, size in BOOKS:
        text = (root / "children_books" / f"{stem}.txt").read_bytes().decode("utf-8")
        assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
        lines = text.split("\r\n")
        heads = [line for line in lines if line.startswith("CHAPTER ")]
        titles = [title for title, _ in STORIES[start:start + size]]
        assert heads[:3] == [f"CHAPTER I. {titles[0]}", f"CHAPTER II. {titles[1]}", f"CHAPTER III. {titles[2]}"]
        assert len(heads) == size and heads[-1] == "CHAPTER XII. " + titles[-1]
        assert all(len(line) <= 72 for line in lines if not line.startswith("CHAPTER "))
        for head in heads:
            i = lines.index(head)
            assert lines[i + 1] == "" and lines[i + 2] != ""
        start += size
