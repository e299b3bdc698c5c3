"""Answer extraction and equivalence for GSM8K and MATH, and the per-source dispatch.

GSM8K follows lm-evaluation-harness's two filters so numbers are comparable to published ones:
"strict" reads the number after ``####``; "flexible" takes the last number in the output. We
differ from it on purpose in three places (docs/EVALUATION.md, checked against lm-eval's own
filters in tests/unit/test_scorers.py): numbers are compared by value (``18.00`` == ``18``), a
final ``\\boxed{}`` wins over the last number, and a fraction ``3/4`` is one number, not two.
MATH answers are compared with ``math-verify``. Reasoning models' ``<think>...</think>`` blocks
are removed first: the answer is what comes after them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from curiosity_sft.data.sources.math import last_boxed

THINK = re.compile(r"<think>.*?</think>", re.S)
# A number as people write them: -1,234.5  $18  .5  3/4 ; the sign only when not a hyphen in a word.
NUMBER = re.compile(r"(?<![\w.])-?\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+(?![\d,]*\.\d))?")
STRICT = re.compile(r"####\s*\\?\$?\s*(-?[\d.,]*\d(?:\s*/\s*\d+)?)")
LATEX_FRAC = re.compile(r"\\d?frac\{(-?[\d.,]+)\}\{(-?[\d.,]+)\}")


@dataclass
class Score:
    extracted: str | None
    correct: bool


def strip_think(output: str) -> str:
    """The answer part of a reasoning model's output: what follows its thinking."""
    output = THINK.sub("", output)
    if "</think>" in output:  # the opening tag was in the prompt, only the closing one is generated
        output = output.split("</think>")[-1]
    elif "<think>" in output:  # thinking that never finished: there is no answer
        output = output.split("<think>")[0]
    return output.strip()


def normalize_number(s: str) -> str | None:
    """A canonical string for a number's value, or None when ``s`` is not a number.

    ``1,000`` / ``$1000.00`` / ``1000.`` -> ``1000``; ``3/4`` / ``\\frac{3}{4}`` / ``.75`` -> ``0.75``.
    """
    s = LATEX_FRAC.sub(r"\1/\2", s)
    s = s.replace("\\$", "").replace("$", "").replace(",", "").replace("\\!", "").strip().rstrip(".").strip()
    s = re.sub(r"\s*/\s*", "/", s)
    try:
        v = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return str(v.numerator) if v.denominator == 1 else repr(float(v))


def extract_gsm8k(output: str, strict: bool) -> str | None:
    text = strip_think(output)
    if strict:
        m = STRICT.search(text)
        return normalize_number(m.group(1)) if m else None
    boxed = last_boxed(text)
    if boxed is not None and normalize_number(boxed) is not None:
        return normalize_number(boxed)
    for raw in reversed(NUMBER.findall(LATEX_FRAC.sub(r"\1/\2", text))):
        if (n := normalize_number(raw)) is not None:
            return n
    return None


def score_gsm8k(output: str, reference: str, strict: bool = False) -> Score:
    got = extract_gsm8k(output, strict)
    return Score(got, got is not None and got == normalize_number(reference))


def score_math(output: str, reference: str) -> Score:
    """``math-verify`` equivalence of the last ``\\boxed{}`` (or, without one, the last LaTeX/number)."""
    from math_verify import parse, verify

    text = strip_think(output)
    got = last_boxed(text)
    try:
        gold = parse(f"${reference}$")
        pred = parse(f"${got}$") if got is not None else parse(text)
        if got is None and pred:
            got = str(pred[-1])
        ok = bool(pred) and bool(verify(gold, pred))
    except Exception:  # math-verify raises on some LaTeX: an unparsable answer is wrong, not a crash
        ok = False
    if got is None:
        return Score(None, False)
    return Score(got, ok or got.replace(" ", "") == reference.replace(" ", ""))
