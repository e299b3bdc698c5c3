"""Duplicate removal: the filters that decide which examples are distinct.

- **Exact duplicates**: same normalised content (case and whitespace ignored), or the same id
  (GSM8K/MATH/puzzle ids hash the question, so a repeated question with a new solution counts).
- **Near duplicates**: MinHash over 5-shingles of words and symbols with LSH (``datasketch``)
  proposes candidates, the exact Jaccard similarity of the two shingle sets decides; a pair at or
  above the threshold is one example, unless their outcomes differ: generated
  puzzles share a long preamble and differ in ``P ∧ Q`` vs ``P ∨ Q``, GSM8K variants in a number,
  and two problems with different answers are two problems however alike their wording. Chat and
  plain-text examples are compared only with their own kind: a book passage and its "continue the
  story" version are two ways to train, not a repeat.

Contamination (a training example repeating an evaluation problem) is ``decontamination.py``.
Each filter keeps the first example it sees, so callers pass evaluation examples first: a training
example that duplicates a test problem is the one dropped.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

from curiosity_sft.data.schema import Example

TOKEN = re.compile(r"\w+|[^\w\s]")  # symbols count: `¬Q` and `Q` are different statements
SHINGLE = 5
NUM_PERM = 128
# (false positive, false negative) weights for datasketch's choice of bands: a missed duplicate is
# final, a false candidate only costs one exact Jaccard, so recall at the threshold wins (11 bands
# of 11 rows at 0.9: a pair at J = 0.90 is proposed 98.4% of the time, at 0.93 99.9%).
LSH_WEIGHTS = (0.01, 0.99)


def content(ex: Example) -> str:
    """Everything a model would see of an example, turns joined in order."""
    return ex.text if ex.text is not None else "\n".join(m["content"] for m in ex.messages or [])


def kind(ex: Example) -> str:
    return "text" if ex.text is not None else "chat"


@dataclass
class Verdict:
    """Which filter dropped an example, and why (kept examples have no verdict)."""

    reason: str
    detail: str = ""


def exact_duplicates(examples: Sequence[Example]) -> dict[int, Verdict]:
    """Index -> verdict for every example whose id or normalised content was seen before."""
    seen_ids: set[str] = set()
    seen_content: set[bytes] = set()
    out: dict[int, Verdict] = {}
    for i, ex in enumerate(examples):
        key = hashlib.sha1(f"{kind(ex)}\0{' '.join(content(ex).lower().split())}".encode()).digest()
        if ex.id in seen_ids or key in seen_content:
            out[i] = Verdict("exact_duplicate")
            continue
        seen_ids.add(ex.id)
        seen_content.add(key)
    return out


def outcome(ex: Example) -> str:
    """What an example concludes: its verifiable answer, else its reply's last line (chat only)."""
    if ex.answer is not None:
        return " ".join(ex.answer.lower().split())
    if ex.messages is None:
        return ""
    lines = [ln for ln in ex.reference.lower().splitlines() if ln.strip()]
    return " ".join(lines[-1].split()) if lines else ""


def shingles(text: str) -> list[bytes]:
    w = TOKEN.findall(text.lower())
    if len(w) <= SHINGLE:
        return [" ".join(w).encode()]
    return [" ".join(w[i:i + SHINGLE]).encode() for i in range(len(w) - SHINGLE + 1)]


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(examples: Sequence[Example], threshold: float, skip: Iterable[int] = ()) -> dict[int, Verdict]:
    """Index -> verdict for examples within ``threshold`` Jaccard of an earlier kept one.

    The LSH only proposes candidates, banded for recall at the threshold (``LSH_WEIGHTS``); each
    candidate with the same outcome is confirmed with the exact Jaccard of the two shingle sets,
    so no pair below the threshold is ever removed and none above it depends on MinHash noise.
    Shingle sets are rebuilt only for examples that meet a candidate: keeping all of them would
    hold millions of strings. Shingles are hashed with CRC-32: the same on every run and machine
    (unlike ``hash()``), and ~5x faster than datasketch's default SHA-1.
    """
    skipped = set(skip)
    todo = [i for i in range(len(examples)) if i not in skipped]
    hashes = MinHash.bulk((shingles(content(examples[i])) for i in todo), num_perm=NUM_PERM, hashfunc=zlib.crc32)
    lsh = {k: MinHashLSH(threshold=threshold, num_perm=NUM_PERM, weights=LSH_WEIGHTS) for k in ("chat", "text")}
    kept: dict[str, tuple[int, str]] = {}  # id -> (index, outcome)
    sets: dict[int, set[bytes]] = {}

    def shingle_set(i: int) -> set[bytes]:
        if i not in sets:
            sets[i] = set(shingles(content(examples[i])))
        return sets[i]

    out: dict[int, Verdict] = {}
    for i, m in zip(todo, hashes, strict=True):
        index, end = lsh[kind(examples[i])], outcome(examples[i])
        match = next((k for k in sorted(index.query(m))
                      if kept[k][1] == end and jaccard(shingle_set(i), shingle_set(kept[k][0])) >= threshold), None)
        if match is not None:
            out[i] = Verdict("near_duplicate", detail=match)
            continue
        index.insert(examples[i].id, m)
        kept[examples[i].id] = (i, end)
    return out
