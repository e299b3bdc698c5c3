"""Where a sampler's examples come from, and how they become the rows of one step.

A sampler decides *which* examples a step may use; ``fill_rows`` lays them into the step's rows
(one example per row, or packed into rows of ``max_length`` tokens), so every strategy packs the
same way. The streams are seeded by strings (``random.Random`` hashes a string seed with
SHA-512), never by Python's salted ``hash``, so every process draws the same sequence.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Stream(Protocol):
    def __len__(self) -> int: ...  # examples it draws from
    def take(self) -> int: ...
    def give_back(self, items: Sequence[int]) -> None: ...


class CycleStream:
    """A group's examples in a seeded order, one cycle after another, with a queue of examples handed back.

    Every member appears once per cycle, so a member met twice within one step means the group
    is smaller than the step. Examples that did not fit into a step are handed back and come
    first in the next one; they are part of the state, so a resumed run places them the same way.
    """

    def __init__(self, members: Sequence[int], seed: int, tag: str,
                 order: Callable[[int], list[int]] | None = None) -> None:
        if not members:
            raise ValueError(f"stream {tag!r} has no examples")
        self.members = list(members)
        self.seed, self.tag = seed, tag
        self._order_for = order or self._shuffled
        self.cycle, self.pos = 0, 0
        self.pending: list[int] = []
        self._order = self._order_for(0)

    def _shuffled(self, cycle: int) -> list[int]:
        order = list(self.members)
        random.Random(f"{self.seed}:{self.tag}:{cycle}").shuffle(order)
        return order

    def __len__(self) -> int:
        return len(self.members)

    def take(self) -> int:
        if self.pending:
            return self.pending.pop(0)
        if self.pos >= len(self._order):
            self.cycle, self.pos = self.cycle + 1, 0
            self._order = self._order_for(self.cycle)
        self.pos += 1
        return self._order[self.pos - 1]

    def give_back(self, items: Sequence[int]) -> None:
        self.pending = list(items) + self.pending

    def state_dict(self) -> dict[str, Any]:
        return {"cycle": self.cycle, "pos": self.pos, "pending": list(self.pending)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cycle, self.pos, self.pending = int(state["cycle"]), int(state["pos"]), [int(i) for i in state["pending"]]
        self._order = self._order_for(self.cycle)


class PoolDraws:
    """Uniform draws without replacement from ``pool[:size]``, a new pass once it is used up.

    A lazy Fisher-Yates shuffle: each draw costs O(1) however large the pool, so a step drawing
    a few hundred examples from 100k eligible ones does not shuffle all 100k. It lives for one
    step (its generator is seeded by the step), so it has no state to save.
    """

    def __init__(self, pool: Sequence[int], size: int, rng: random.Random) -> None:
        if size <= 0:
            raise ValueError("empty pool")
        self.pool, self.size, self.rng = pool, size, rng
        self._left, self._swaps = size, {}  # type: dict[int, int]

    def __len__(self) -> int:
        return self.size

    def take(self) -> int:
        if self._left == 0:
            self._left, self._swaps = self.size, {}
        j = self.rng.randrange(self._left)
        self._left -= 1
        picked = self._swaps.get(j, j)
        self._swaps[j] = self._swaps.get(self._left, self._left)
        return self.pool[picked]

    def give_back(self, items: Sequence[int]) -> None:
        """Nothing carries over: the next step draws afresh."""


def fill_rows(stream: Stream, n_rows: int, lengths: Sequence[int], capacity: int | None,
              min_length: int = 1, lookahead: int | None = None) -> list[list[int]]:
    """Up to ``n_rows`` rows from ``stream``: one example each (``capacity`` None) or packed first-fit.

    Packed, examples go into the first row with room, a new row opens while there are fewer than
    ``n_rows``, and an example that fits nowhere is handed back to the stream for the next step.
    Filling stops when every row has less room than ``min_length`` (the shortest example) or
    after ``lookahead`` examples in a row were handed back (default: ``n_rows + 8``). An example
    appears once per step unless every example of its stream is already in the step (a group
    smaller than a step), so processes that split the rows never share an example otherwise; a
    stream that starts a new cycle within a step hands back the examples the step already has.
    """
    if n_rows <= 0:
        return []
    lookahead = n_rows + 8 if lookahead is None else lookahead
    rows: list[list[int]] = []
    room: list[int] = []
    back: list[int] = []
    seen: set[int] = set()
    misses = 0
    while misses < lookahead:
        if len(rows) == n_rows and (capacity is None or max(room) < min_length):
            break
        i = stream.take()
        if i in seen:
            if len(seen) < len(stream):  # a new cycle began within the step: this one waits for the next
                back.append(i)
                misses += 1
                continue
            seen.clear()  # the whole group is in this step already: it is smaller than a step
        if capacity is None:
            rows.append([i])
            seen.add(i)
            continue
        n = lengths[i]
        r = next((k for k, left in enumerate(room) if n <= left), None)
        if r is None and len(rows) < n_rows:
            rows.append([])
            room.append(capacity)
            r = len(rows) - 1
        if r is None:
            back.append(i)
            misses += 1
            continue
        rows[r].append(i)
        room[r] -= n
        seen.add(i)
        misses = 0
    stream.give_back(back)
    return rows
