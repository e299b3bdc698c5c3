"""Pacing functions: how much of the data, or which source, a step may draw from at step t.

Pure functions of (t, T, parameters), so every process computes the same value and a resumed
run needs no state to continue the schedule.
"""

from __future__ import annotations

import math


def competence(t: float, total: float, c0: float = 0.01, p: int = 2) -> float:
    """Platanios et al. (2019): c(t) = min(1, (t (1 - c0^p) / T + c0^p)^(1/p)).

    ``p = 1`` grows linearly, ``p = 2`` as a square root (fast at first, when there is little
    eligible data, and slower later); ``T`` is the step at which competence reaches 1.
    """
    if total <= 0:
        return 1.0
    base = c0 ** p
    return min(1.0, (max(t, 0.0) * (1.0 - base) / total + base) ** (1.0 / p))


def stage_weights(progress: float, n_stages: int, overlap: float) -> list[float]:
    """Share of each stage's source at ``progress`` in [0, 1] of training.

    Stage k owns [k/S, (k+1)/S). With ``overlap`` o, each boundary is a linear blend over a
    window of o/S centred on it (the two neighbours at 1/2 each on the boundary), so o = 0 is a
    hard switch and o = 1 blends over whole stages. The first stage holds from the start and the
    last to the end. The weights always sum to 1.
    """
    if n_stages == 1:
        return [1.0]
    width = 1.0 / n_stages
    half = overlap * width / 2.0
    out = []
    for k in range(n_stages):
        rise = 1.0 if k == 0 else _ramp(progress, k * width, half)
        fall = 1.0 if k == n_stages - 1 else 1.0 - _ramp(progress, (k + 1) * width, half)
        out.append(rise * fall)
    total = sum(out)
    return [w / total for w in out]


def _ramp(x: float, centre: float, half: float) -> float:
    """0 before the window around ``centre``, 1 after it, linear inside (a step when ``half`` is 0)."""
    if half <= 0:
        return 1.0 if x >= centre else 0.0
    return min(1.0, max(0.0, (x - (centre - half)) / (2.0 * half)))


def allocate_rows(credit: dict[str, float], weights: dict[str, float], n_rows: int) -> dict[str, int]:
    """Split ``n_rows`` between sources in proportion to ``weights``, carrying the remainders.

    Rounding each step on its own would always hand the spare row to the same source; carrying
    each source's unspent fraction in ``credit`` (updated in place, part of the sampler's state)
    keeps the running totals within one row of the exact shares, deterministically.
    """
    norm = sum(weights.values())
    for s, w in weights.items():
        credit[s] = credit.get(s, 0.0) + n_rows * w / norm
    counts = {s: max(0, math.floor(credit[s])) for s in weights}
    spare = n_rows - sum(counts.values())
    for s in sorted(weights, key=lambda s: (-(credit[s] - counts[s]), s)):
        if spare <= 0:
            break
        counts[s] += 1
        spare -= 1
    for s in sorted(counts, key=lambda s: (credit[s] - counts[s], s)):  # over-allocated: take rows back
        if spare >= 0:
            break
        if counts[s] > 0:
            counts[s] -= 1
            spare += 1
    for s in weights:
        credit[s] -= counts[s]
    return counts
