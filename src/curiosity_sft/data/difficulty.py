"""Difficulty on one scale within each source: the field a curriculum orders examples by.

Each reader measures a property of the problem itself on its own scale: GSM8K the number of steps
of the reference solution, MATH the annotated level, a book passage its Flesch-Kincaid grade, a
logic puzzle its size from the generator's parameters (people, grid, premises and variables).
Those scales mean nothing next to each other (is a level-3 MATH problem harder than a 4-step GSM8K
one?), and within a source they bunch up (most GSM8K problems take 2-4 steps). ``prepare``
therefore replaces the measure with the example's mid-rank percentile within its source (and
within its task where a source mixes several, as the logic puzzles do), rescaled so that the
easiest examples are 0 and the hardest 1: ties share the middle of their ranks, and the gap
between two values is the share of the source's examples between them, so "the easiest 30%" is
``difficulty <= 0.3`` give or take the ties. The reader's own value is kept in
``meta["difficulty_measure"]``.

An example without a measure, or in a group where every example has the same measure (nothing
to order), has ``difficulty`` None and says why in ``meta["difficulty_reason"]``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from curiosity_sft.data.schema import DIFFICULTY_REASON, Example

MEASURE = "difficulty_measure"


def _group(ex: Example) -> tuple[str, str]:
    task = ex.meta.get("task")
    return ex.source, task if isinstance(task, str) else ""


def normalise_difficulty(examples: Sequence[Example]) -> list[Example]:
    """``examples`` with each measured difficulty replaced by its percentile within its source and task.

    Computed over everything read (train, validation and test files together), so a problem gets
    the same value whichever split it lands in.
    """
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for ex in examples:
        if ex.difficulty is not None:
            values[_group(ex)].append(float(ex.difficulty))
    for v in values.values():
        v.sort()
    out = []
    for ex in examples:
        if ex.difficulty is None:
            reason = ex.meta.get(DIFFICULTY_REASON) or f"source `{ex.source}` gives no difficulty measure"
            out.append(replace(ex, meta={**ex.meta, DIFFICULTY_REASON: reason}))
            continue
        group, x = values[_group(ex)], float(ex.difficulty)
        meta = {**ex.meta, MEASURE: round(x, 4)}
        if group[0] == group[-1]:
            task = f" ({_group(ex)[1]})" if _group(ex)[1] not in ("", ex.source) else ""
            meta[DIFFICULTY_REASON] = (f"all {len(group)} examples of `{ex.source}`{task} have the same difficulty "
                                       "measure: nothing to order them by")
            out.append(replace(ex, difficulty=None, meta=meta))
            continue
        low, high = _mid_rank(group, group[0]), _mid_rank(group, group[-1])
        out.append(replace(ex, difficulty=(_mid_rank(group, x) - low) / (high - low), meta=meta))
    return out


def _mid_rank(ordered: list[float], x: float) -> float:
    """0-based rank of ``x`` in ``ordered``, ties at the middle of the ranks they share."""
    below = bisect_left(ordered, x)
    return below + (bisect_right(ordered, x) - below - 1) / 2
