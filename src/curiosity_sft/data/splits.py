"""The train/validation split: stratified by source, seeded, and never through a group.

Some examples are two views of one piece of text: a book passage is a plain-text example *and* a
"continue the story" chat. Split independently, one lands in train and the other in val, and the
validation loss then measures memory of a passage the model trained on. Readers give such
examples the same ``meta["split_group"]``; a group always lands in one split. Examples without
one are their own group, and the split of a source without groups is what it always was (the
same seeded shuffle of ids).

A source that came with its own validation file (``val*``/``dev*``/``validation*``) is not split
at all: its validation examples are the user's, all of its other examples train.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable

from curiosity_sft.data.schema import Example

GROUP = "split_group"


def group_of(ex: Example) -> str:
    return str(ex.meta.get(GROUP, ex.id))


def split_train_val(examples: list[Example], val_ratio: float, seed: int,
                    fixed: Iterable[str] = ()) -> tuple[list[Example], list[Example]]:
    """(train, val): about ``val_ratio`` of each source's examples in val, whole groups at a time.

    Sources in ``fixed`` (they have a validation file) go to train whole.
    """
    keep_whole = set(fixed)
    by_source: dict[str, dict[str, list[Example]]] = defaultdict(lambda: defaultdict(list))
    for ex in examples:
        by_source[ex.source][group_of(ex)].append(ex)
    train: list[Example] = []
    val: list[Example] = []
    for source in sorted(by_source):
        groups = [sorted(g, key=lambda e: e.id) for g in by_source[source].values()]
        groups.sort(key=lambda g: g[0].id)
        n = sum(map(len, groups))
        k = round(n * val_ratio) if n > 1 and source not in keep_whole else 0
        random.Random(f"{seed}:{source}").shuffle(groups)
        taken = 0
        for g in groups:
            if taken < k:
                val += g
                taken += len(g)
            else:
                train += g
    return train, val
