"""The curiosity bandit on a synthetic problem: buckets whose held-out loss falls only when they are trained.

A bucket "learns" 0.004 nats of held-out loss per step drawn from it; the others stay flat (with
a little measurement noise). Defaults throughout (lr 0.05, forget 0.05, floor 0.2, smoothing
0.5, a measurement every 10 steps), so the numbers stated here are what a user gets.
"""

from __future__ import annotations

import random

import pytest

from curiosity_sft.curriculum.bandit import Exp3S, RewardScaler
from curiosity_sft.curriculum.curiosity import CuriositySampler
from curiosity_sft.curriculum.data import CurriculumData


def simulate(steps: int, learner, n_buckets: int = 2, reward: str = "heldout", seed: int = 0) -> list[list[float]]:
    """Probabilities after every step; ``learner(step)`` is the index of the bucket that learns then."""
    n = 100 * n_buckets
    data = CurriculumData(tuple(f"s{i % n_buckets}" for i in range(n)), (50,) * n, (0.0,) * n, (None,) * n)
    s = CuriositySampler(data, 4, False, 128, seed, steps, bands=1, reward=reward)
    gain = [0.0] * s.k
    rng = random.Random(seed)
    history = []
    for t in range(steps):
        if s.wants_probe(t):
            s.observe(t, {name: 3.0 - gain[i] + rng.uniform(-0.002, 0.002) for i, name in enumerate(s.names)})
        s.next_step(t)
        if s.last_bucket == learner(t):
            gain[s.last_bucket] += 0.004
        s.observe_train(t, 3.0 - gain[s.last_bucket])
        history.append(list(s.probs))
    return history


def first_step(history, bucket: int, at_least: float, start: int = 0) -> int | None:
    return next((t - start for t, p in enumerate(history) if t >= start and p[bucket] >= at_least), None)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probability_moves_to_the_bucket_that_learns_and_never_under_the_floor(seed):
    history = simulate(200, learner=lambda t: 0, seed=seed)
    assert history[0] == [0.5, 0.5]
    reached = first_step(history, 0, 0.7)
    assert reached is not None and reached <= 60, reached  # measured: 30 steps (3 bandit updates), seeds 0-4
    assert min(p for ps in history for p in ps) >= 0.2 / 2  # the floor: 0.2 of the uniform share
    assert history[-1][0] > 0.75


def test_a_bucket_whose_loss_stops_falling_loses_its_weight():
    """Bucket 0 learns for 400 steps, then stops; bucket 1 learns from then on."""
    history = simulate(800, learner=lambda t: 0 if t < 400 else 1)
    assert history[399][0] > 0.8
    assert first_step(history, 1, 0.5, start=400) <= 100  # measured: 90 steps
    assert first_step(history, 1, 0.7, start=400) <= 150  # measured: 120 steps
    assert history[-1][0] < 0.2


def test_one_learner_among_six_buckets():
    history = simulate(300, learner=lambda t: 3, n_buckets=6)
    assert first_step(history, 3, 0.5) <= 80  # measured: 40 steps
    assert min(p for ps in history for p in ps) >= 0.2 / 6


def test_training_loss_can_be_part_of_the_reward():
    history = simulate(200, learner=lambda t: 0, reward="heldout+train")
    assert first_step(history, 0, 0.7) <= 60 and min(min(p) for p in history) >= 0.1  # measured: 30 steps


def test_reward_scaler_maps_the_20th_and_80th_percentiles_to_minus_and_plus_one():
    scaler = RewardScaler(window=100)
    assert scaler.scale(5.0) == 0.0  # no history yet: no opinion
    scaler.add([float(x) for x in range(11)])  # 0..10: 20th percentile 2, 80th 8
    assert scaler.scale(2.0) == pytest.approx(-1.0) and scaler.scale(8.0) == pytest.approx(1.0)
    assert scaler.scale(5.0) == pytest.approx(0.0) and scaler.scale(-3) == -1.0 and scaler.scale(30) == 1.0
    scaler.add([0.0] * 200)
    assert len(scaler.history) == 100 and scaler.scale(1.0) == 0.0  # a flat history cannot rank anything


def test_exp3s_forgets_toward_uniform_and_keeps_the_floor():
    b = Exp3S(3, lr=0.5, forget=0.1, floor=0.3)
    b.update({0: 1.0}, [10, 0, 0], [1 / 3] * 3)
    p = b.policy()
    assert p[0] > 0.7 and min(p) >= 0.1 and sum(p) == pytest.approx(1.0)  # at most 0.7 + 0.1 with floor 0.3
    for _ in range(50):  # no more rewards: the lead fades (what lets a stalled bucket lose weight)
        b.update({}, [0, 0, 0], b.policy())
    assert b.policy() == pytest.approx([1 / 3] * 3, abs=1e-3)
