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

import multiprocessing
import re
import threading
from concurrent.futures import ProcessPoolExecutor
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
    """What was read from an output, whether it is right, and, for reasoning-gym tasks, the
    scorer's own credit (its partial credit is kept for audits; only 1.0 is correct)."""

    extracted: str | None
    correct: bool
    credit: float | None = None
    note: str | None = None


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


def _verify_math(reference: str, boxed: str | None, text: str) -> tuple[str | None, bool]:
    """(extracted answer, math-verify equivalence). Must run on a main thread: math-verify's
    timeouts are ``signal.alarm``, which Python allows only there."""
    from math_verify import parse, verify

    try:
        gold = parse(f"${reference}$")
        pred = parse(f"${boxed}$") if boxed is not None else parse(text)
        got = boxed if boxed is not None else (str(pred[-1]) if pred else None)
        return got, bool(pred) and bool(verify(gold, pred))
    except Exception:  # math-verify raises on some LaTeX: an unparsable answer is wrong, not a crash
        return boxed, False


_POOL_LOCK = threading.Lock()
_POOL: ProcessPoolExecutor | None = None


def _main_thread_worker() -> ProcessPoolExecutor:
    """One spawned worker process whose main thread runs math-verify for callers on other threads.

    Off the main thread ``signal.alarm`` raises, math-verify turns that into a ValueError, and
    every MATH answer would silently score wrong; disabling its timeout instead would let one
    pathological expression hang the evaluation. A worker keeps the timeout and costs one
    process start (about a second), paid only by threaded callers.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _POOL


def score_math(output: str, reference: str) -> Score:
    """``math-verify`` equivalence of the last ``\\boxed{}`` (or, without one, the last LaTeX/number).

    Works from any thread: off the main thread the check runs in a worker process (see
    ``_main_thread_worker``), so the answer gets the same verdict it gets on the main thread.
    """
    text = strip_think(output)
    boxed = last_boxed(text)
    if threading.current_thread() is threading.main_thread():
        got, ok = _verify_math(reference, boxed, text)
    else:
        got, ok = _main_thread_worker().submit(_verify_math, reference, boxed, text).result()
    if got is None:
        return Score(None, False)
    return Score(got, ok or got.replace(" ", "") == reference.replace(" ", ""))
