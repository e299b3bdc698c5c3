"""What a sampler knows about each training example: source, length, task and a difficulty score.

Samplers never see text or tokens, only these columns, so they are cheap to build on every
process and their plans depend on nothing a process could disagree on.

The difficulty a sampler uses is a *within-source rank*: the share of the example's source that
is strictly easier than it, in [0, 1). Rule difficulties are normalised within their source by
``prepare`` (contract 3 in OWNERSHIP.md) but not necessarily spread evenly (GSM8K's step counts
are a handful of values); a rank makes ``competence <= c`` mean "the easiest share c of every
source", as in Platanios et al. (2019), who also pace by the difficulty's CDF, and puts rule and
model difficulties on one scale so that ``mix`` can average them. "Strictly easier" keeps ties
together and gives every source's easiest examples rank 0, so no source starts with nothing.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from curiosity_sft.data.schema import Example
from curiosity_sft.errors import UserError


def rank_within_source(sources: Sequence[str], values: Sequence[float]) -> list[float]:
    """For each example, the share of its source's examples with a strictly smaller value."""
    by_source: dict[str, list[float]] = defaultdict(list)
    for s, v in zip(sources, values, strict=True):
        by_source[s].append(v)
    sorted_values = {s: sorted(vs) for s, vs in by_source.items()}
    return [bisect_left(sorted_values[s], v) / len(sorted_values[s]) for s, v in zip(sources, values, strict=True)]


def combine_difficulty(mode: str, rules: Sequence[float | None], sources: Sequence[str],
                       model_losses: Sequence[float] | None = None, mix_weight: float = 0.5,
                       unrated: float = 0.5) -> list[float]:
    """The within-source difficulty rank of every example for ``curriculum.difficulty``.

    ``rules``: the prepared difficulty, ``unrated`` where an example has none; ``model``: the
    base model's mean token loss (higher is harder); ``mix``: the two ranks averaged with
    ``mix_weight`` on the model's, then ranked again so the result is a rank like the others.
    """
    rule_rank = rank_within_source(sources, [unrated if d is None else float(d) for d in rules])
    if mode == "rules":
        return rule_rank
    if model_losses is None or len(model_losses) != len(sources):
        raise ValueError(f"curriculum.difficulty={mode} needs one model loss per example")
    model_rank = rank_within_source(sources, list(model_losses))
    if mode == "model":
        return model_rank
    if mode == "mix":
        mixed = [(1 - mix_weight) * r + mix_weight * m for r, m in zip(rule_rank, model_rank, strict=True)]
        return rank_within_source(sources, mixed)
    raise ValueError(f"unknown difficulty mode {mode!r}")


@dataclass(frozen=True)
class CurriculumData:
    """One row per training example, in the order of the loop's encoded list (indices are shared)."""

    sources: tuple[str, ...]
    lengths: tuple[int, ...]
    difficulty: tuple[float, ...]  # within-source rank in [0, 1)
    tasks: tuple[str | None, ...]

    def __post_init__(self) -> None:
        n = len(self.sources)
        if not (len(self.lengths) == len(self.difficulty) == len(self.tasks) == n):
            raise ValueError("CurriculumData columns differ in length")
        if n == 0:
            raise UserError("no training examples to sample from", fix="check train_file and max_length")

    @classmethod
    def from_examples(cls, examples: Sequence[Example], lengths: Sequence[int], mode: str = "rules",
                      model_losses: Sequence[float] | None = None, mix_weight: float = 0.5,
                      unrated: float = 0.5) -> CurriculumData:
        """``examples`` are the examples the loop kept, aligned with its encoded list and ``lengths``."""
        if len(examples) != len(lengths):
            raise ValueError("one length per example")
        sources = [e.source for e in examples]
        difficulty = combine_difficulty(mode, [e.difficulty for e in examples], sources, model_losses, mix_weight,
                                        unrated)
        return cls(tuple(sources), tuple(int(n) for n in lengths), tuple(difficulty),
                   tuple(e.meta.get("task") if isinstance(e.meta, dict) else None for e in examples))

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def source_names(self) -> list[str]:
        return sorted(set(self.sources))

    def members(self) -> dict[str, list[int]]:
        """Example indices of each source, ascending."""
        out: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.sources):
            out[s].append(i)
        return dict(sorted(out.items()))

    def fingerprint(self) -> str:
        """A short hash of every column: a sampler's saved state only resumes on the same data."""
        blob = json.dumps([self.sources, self.lengths, [round(d, 6) for d in self.difficulty]]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
