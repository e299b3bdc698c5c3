"""Pacing functions pinned at t = 0, T/2, T, the stage blend and the row allocation."""

import pytest

from curiosity_sft.curriculum.pacing import allocate_rows, competence, stage_weights

T = 1000


@pytest.mark.parametrize(("p", "half"), [
    # c(T/2) by hand: p=1: 0.5 * (1 - 0.01) + 0.01; p=2: sqrt(0.5 * (1 - 0.01^2) + 0.01^2)
    (1, 0.505),
    (2, 0.7071421356417675),
])
def test_competence_at_0_half_and_end(p, half):
    assert competence(0, T, c0=0.01, p=p) == pytest.approx(0.01, abs=1e-15)
    assert competence(T / 2, T, c0=0.01, p=p) == pytest.approx(half, rel=1e-12)
    assert competence(T, T, c0=0.01, p=p) == pytest.approx(1.0, abs=1e-15)
    assert competence(3 * T, T, c0=0.01, p=p) == 1.0  # capped after the pacing ends: plain sampling
    values = [competence(t, T, p=p) for t in range(0, T + 1, 50)]
    assert values == sorted(values)


def test_square_root_pacing_front_loads_competence():
    assert competence(T / 4, T, p=2) == pytest.approx(0.5000749943758436, rel=1e-12)
    assert competence(T / 4, T, p=2) > competence(T / 4, T, p=1)


def test_stage_weights_switch_hard_without_overlap_and_blend_with_it():
    assert stage_weights(0.0, 4, 0.0) == [1, 0, 0, 0]
    assert stage_weights(0.3, 4, 0.0) == [0, 1, 0, 0]
    assert stage_weights(0.99, 4, 0.0) == [0, 0, 0, 1]
    # overlap 0.4 of a stage (0.25): blended within 0.05 of each boundary, half and half on it
    assert stage_weights(0.25, 4, 0.4) == pytest.approx([0.5, 0.5, 0, 0])
    assert stage_weights(0.225, 4, 0.4) == pytest.approx([0.75, 0.25, 0, 0])
    assert stage_weights(0.125, 4, 0.4) == pytest.approx([1, 0, 0, 0])
    for x in (0.0, 0.1, 0.26, 0.5, 0.74, 1.0):
        for o in (0.0, 0.5, 1.0):
            assert sum(stage_weights(x, 4, o)) == pytest.approx(1.0)
    assert stage_weights(0.5, 1, 0.3) == [1.0]


def test_allocate_rows_keeps_running_totals_within_one_row_of_the_shares():
    credit: dict[str, float] = {}
    weights = {"a": 0.5, "b": 0.3, "c": 0.2}
    totals = dict.fromkeys(weights, 0)
    for step in range(1, 101):
        counts = allocate_rows(credit, weights, 7)
        assert sum(counts.values()) == 7 and min(counts.values()) >= 0
        for s in weights:
            totals[s] += counts[s]
            assert abs(totals[s] - 7 * step * weights[s]) < 1.0
