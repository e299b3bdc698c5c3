"""A non-stationary bandit over data buckets (Exp3.S), and the reward rescaling it needs.

Written here because no maintained library fits: MABWiser (the maintained bandit package) has
no adversarial bandits, and SMPyBandits has an Exp3.S but no release since 2019, numpy-array
state and per-play feedback only. It is a few lines of arithmetic. Everything is plain Python
floats, so a state round-trips through JSON exactly and every process computes the same numbers.

Feedback arrives in intervals: the sampler plays an arm (bucket) for each step, and every
``probe_every`` steps a reward ``g`` in [-1, 1] is known for each arm played in the interval
(``plays[b]`` times, always at probability ``probs[b]``, which changes only at updates). Summing
the per-play importance-weighted estimates ``g / p`` over the interval gives ``g * n / p``,
which is what one Exp3.S update per play would have added.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def softmax(x: Sequence[float]) -> list[float]:
    m = max(x)
    e = [math.exp(v - m) for v in x]
    s = sum(e)
    return [v / s for v in e]


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on an already sorted list."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class RewardScaler:
    """Graves et al. (2017), Algorithm 2: a raw learning progress mapped to [-1, 1].

    Progress below the 20th percentile of the recent history is -1, above the 80th is +1,
    linear between, so the bandit sees which buckets progress *more than usual* whatever the
    loss scale, and the scale can drift as training goes on.
    """

    def __init__(self, window: int = 100) -> None:
        self.window = window
        self.history: list[float] = []

    def add(self, values: Sequence[float]) -> None:
        self.history = (self.history + [float(v) for v in values])[-self.window:]

    def scale(self, x: float) -> float:
        if len(self.history) < 2:
            return 0.0
        s = sorted(self.history)
        lo, hi = quantile(s, 0.2), quantile(s, 0.8)
        if hi - lo <= 1e-12:
            return 0.0
        return max(-1.0, min(1.0, 2.0 * (x - lo) / (hi - lo) - 1.0))


class Exp3S:
    """Exp3.S (Auer et al. 2002) as used for curricula by Graves et al. (2017), Algorithm 1.

    pi(i) = (1 - eps) softmax(w)_i + eps / K, with ``eps`` the exploration floor; after the
    rewards, w_i <- log[(1 - a) exp(w_i + lr r_i) + a / (K - 1) sum_{j != i} exp(w_j + lr r_j)]:
    the ``a`` (forget) term shares weight between arms so the bandit can follow a moving target,
    which is what lets a bucket that stopped progressing lose its lead.
    """

    def __init__(self, k: int, lr: float, forget: float, floor: float) -> None:
        self.k, self.lr, self.forget, self.floor = k, lr, forget, floor
        self.w = [0.0] * k

    def policy(self) -> list[float]:
        return [(1 - self.floor) * p + self.floor / self.k for p in softmax(self.w)]

    def update(self, rewards: dict[int, float], plays: Sequence[int], probs: Sequence[float]) -> None:
        v = [self.w[i] + self.lr * rewards.get(i, 0.0) * plays[i] / probs[i] for i in range(self.k)]
        if self.k == 1:
            return
        m = max(v)
        e = [math.exp(x - m) for x in v]
        total = sum(e)
        a = self.forget
        w = [m + math.log((1 - a) * e[i] + a / (self.k - 1) * (total - e[i])) for i in range(self.k)]
        top = max(w)
        self.w = [x - top for x in w]  # only differences matter; keep the numbers small

    def state_dict(self) -> dict[str, Any]:
        return {"w": list(self.w)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = [float(x) for x in state["w"]]
