"""Answer extraction and equivalence, per source.

GSM8K follows lm-evaluation-harness: "strict" reads the number after ``####``; "flexible" takes
the last number in the output. MATH answers are compared with ``math-verify``. Reasoning models'
``<think>...</think>`` blocks are removed first: the answer is what comes after them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curiosity_sft.data.sources.math import last_boxed

NUMBER = re.compile(r"-?[$]?\d[\d,]*(?:\.\d+)?")
THINK = re.compile(r"<think>.*?</think>", re.S)


@dataclass
class Score:
    extracted: str | None
    correct: bool


def strip_think(output: str) -> str:
    output = THINK.sub("", output)
    if "</think>" in output:  # an opening tag in the prompt, only the closing one in the output
        output = output.split("</think>")[-1]
    return output.strip()


def normalize_number(s: str) -> str | None:
    s = s.replace(",", "").replace("$", "").strip().rstrip(".")
    try:
        v = float(s)
    except ValueError:
        return None
    return str(int(v)) if v == int(v) else repr(v)


def extract_gsm8k(output: str, strict: bool) -> str | None:
    text = strip_think(output)
    if strict:
        m = re.search(r"####\s*(-?[$]?\d[\d,]*(?:\.\d+)?)", text)
        return normalize_number(m.group(1)) if m else None
    boxed = last_boxed(text)
    if boxed is not None and normalize_number(boxed) is not None:
        return normalize_number(boxed)
    nums = NUMBER.findall(text)
    return normalize_number(nums[-1]) if nums else None


def score_gsm8k(output: str, reference: str, strict: bool = False) -> Score:
    got = extract_gsm8k(output, strict)
    return Score(got, got is not None and got == normalize_number(reference))


def score_math(output: str, reference: str) -> Score:
    from math_verify import parse, verify

    text = strip_think(output)
    got = last_boxed(text)
    if got is None:
        return Score(None, False)
    try:
        ok = bool(verify(parse(f"${reference}$"), parse(f"${got}$")))
    except Exception:  # math-verify raises on unparsable LaTeX: an unparsable answer is wrong, not a crash
        ok = False
    return Score(got, ok or got.replace(" ", "") == reference.replace(" ", ""))


def _norm_text(s: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9,]", " ", s.lower()).split())


def score_logic(output: str, reference: str) -> Score:
    """Knights-and-knaves: compare each person's role, in any order; otherwise normalised text."""
    text = strip_think(output)
    pairs = dict(re.findall(r"(\w+) is an? (\w+)", reference))
    if pairs:
        got = dict(re.findall(r"(\w+) is an? (\w+)", text))
        ok = all(got.get(k, "").lower() == v.lower() for k, v in pairs.items())
        return Score(", ".join(f"{k} is {v}" for k, v in got.items()) or None, ok)
    return Score(text[-200:] or None, _norm_text(reference) in _norm_text(text))


def score(source: str, output: str, reference: str) -> Score:
    if source == "gsm8k":
        return score_gsm8k(output, reference)
    if source == "math":
        return score_math(output, reference)
    if source == "logic":
        return score_logic(output, reference)
    return score_gsm8k(output, reference) if normalize_number(reference) is not None else score_logic(output, reference)
