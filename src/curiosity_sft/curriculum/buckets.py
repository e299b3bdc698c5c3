"""Buckets for the curiosity sampler: source x difficulty band, each with a small held-out probe.

Bands split a source by its within-source difficulty rank into equal-width ranges of the rank
(so roughly equal counts, ties kept together); a band with too few examples joins the band
below it (the first joins the one above), so every bucket can spare its probe and still train.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from curiosity_sft.curriculum.data import CurriculumData

BAND_NAMES = {1: ("all",), 2: ("easy", "hard"), 3: ("easy", "medium", "hard")}


@dataclass(frozen=True)
class Bucket:
    name: str  # "<source>:<band>"; `:` cannot occur in a source name (data_config's pattern)
    source: str
    lo: float  # difficulty rank range of its examples
    hi: float
    train: tuple[int, ...]
    probe: tuple[int, ...]


def _band_names(n: int) -> tuple[str, ...]:
    return BAND_NAMES.get(n, tuple(f"d{k + 1}" for k in range(n)))


def make_buckets(data: CurriculumData, bands: int, probe_examples: int, seed: int) -> list[Bucket]:
    """Buckets in source order, easiest band first; each holds out up to ``probe_examples``.

    A band needs ``4 * probe_examples`` examples to stand alone, so at most a quarter of a
    bucket is held out; a source smaller than that is one bucket whose probe is at most half.
    """
    need = 4 * probe_examples
    out: list[Bucket] = []
    for source, members in data.members().items():
        by_band: list[list[int]] = [[] for _ in range(bands)]
        for i in members:
            by_band[min(bands - 1, int(data.difficulty[i] * bands))].append(i)
        groups: list[list[int]] = []
        for band in by_band:
            if groups and len(groups[-1]) < need:
                groups[-1] += band
            elif band:
                groups.append(list(band))
        if len(groups) > 1 and len(groups[-1]) < need:
            last = groups.pop()
            groups[-1] += last
        for name, group in zip(_band_names(len(groups)), groups, strict=True):
            label = f"{source}:{name}"
            picked = sorted(group)
            k = min(probe_examples, len(picked) // 2)
            probe = sorted(random.Random(f"{seed}:probe:{label}").sample(picked, k))
            held = set(probe)
            d = [data.difficulty[i] for i in group]
            out.append(Bucket(label, source, min(d), max(d), tuple(i for i in picked if i not in held), tuple(probe)))
    return out
