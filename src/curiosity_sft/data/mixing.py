"""Per-source caps and mixing weights: how much of each source the model trains on.

A cap keeps at most N examples of a source (a seeded sample, before the validation split). A
weight sets the source's target share of *training tokens*, not examples: one MATH solution is
several GSM8K ones, and tokens are what the optimizer sees. Sources with a weight share the
tokens they have together in proportion to their weights; a source below its share is repeated
(whole copies, then a seeded sample), one above it is sampled down. Sources without a weight keep
what they have. Copies get ``~k`` appended to their id so ids stay unique.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from curiosity_sft.data.schema import Example


def cap(examples: list[Example], limits: dict[str, int], seed: int) -> tuple[list[Example], dict[str, int]]:
    """At most ``limits[source]`` examples per source; returns the kept examples and the drops."""
    by_source: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_source[ex.source].append(ex)
    keep: set[str] = set()
    dropped: dict[str, int] = {}
    for source, group in sorted(by_source.items()):
        limit = limits.get(source)
        if limit is None or len(group) <= limit:
            keep.update(e.id for e in group)
            continue
        pick = sorted(group, key=lambda e: e.id)
        random.Random(f"{seed}:cap:{source}").shuffle(pick)
        keep.update(e.id for e in pick[:limit])
        dropped[source] = len(group) - limit
    return [e for e in examples if e.id in keep], dropped


def _take_tokens(group: Sequence[tuple[Example, int]], target: float, rng: random.Random) -> list[tuple[Example, int]]:
    """A seeded sample of ``group`` whose tokens first reach ``target`` (at least one example)."""
    order = list(group)
    rng.shuffle(order)
    out, total = [], 0
    for ex, n in order:
        if out and total >= target:
            break
        out.append((ex, n))
        total += n
    return out


def mix(examples: Sequence[Example], lengths: Sequence[int], weights: dict[str, float],
        seed: int) -> tuple[list[Example], list[int]]:
    """Up/down-sample weighted sources to their target token shares; returns examples and lengths."""
    by_source: dict[str, list[tuple[Example, int]]] = defaultdict(list)
    for ex, n in zip(examples, lengths, strict=True):
        by_source[ex.source].append((ex, n))
    weighted = sorted(s for s in by_source if s in weights)
    budget = sum(n for s in weighted for _, n in by_source[s])
    norm = sum(weights[s] for s in weighted)
    out: list[tuple[Example, int]] = []
    for source in sorted(by_source):
        group = by_source[source]
        if source not in weighted:
            out += group
            continue
        target = budget * weights[source] / norm
        have = sum(n for _, n in group)
        rng = random.Random(f"{seed}:mix:{source}")
        copies = int(target // have) if have else 0
        for k in range(copies):
            out += [(e if k == 0 else replace(e, id=f"{e.id}~{k}", meta={**e.meta, "copy": k}), n) for e, n in group]
        rest = target - copies * have
        if rest > 0 and (copies == 0 or rest >= have / len(group) / 2):
            extra = _take_tokens(group, rest, rng)
            out += [(e if copies == 0 else replace(e, id=f"{e.id}~{copies}", meta={**e.meta, "copy": copies}), n)
                    for e, n in extra]
    return [e for e, _ in out], [n for _, n in out]


def shares(examples: Sequence[Example], lengths: Sequence[int]) -> dict[str, dict[str, float | int]]:
    """Tokens and share of tokens per source, rounded so the manifest is stable."""
    tokens: dict[str, int] = defaultdict(int)
    for ex, n in zip(examples, lengths, strict=True):
        tokens[ex.source] += n
    total = sum(tokens.values()) or 1
    return {s: {"tokens": tokens[s], "share": round(tokens[s] / total, 4)} for s in sorted(tokens)}
