"""Every sampler: today's order for `random`, determinism, exact resume, disjoint ranks, packing, and each rule."""

from __future__ import annotations

import json
import random

import pytest

from curiosity_sft.config import SFTConfig
from curiosity_sft.curriculum import CurriculumData, build_sampler, describe
from curiosity_sft.curriculum.data import combine_difficulty, rank_within_source
from curiosity_sft.curriculum.pacing import competence
from curiosity_sft.curriculum.samplers import RandomSampler
from curiosity_sft.errors import UserError
from curiosity_sft.training.batching import epoch_order, plan_epoch
from curiosity_sft.training.distributed import my_share

STRATEGIES = ["random", "stratified", "ordered", "competence", "stages", "curiosity"]
TASKS = {"books": "book_text", "gsm8k": "gsm8k", "logic": "knights_knaves", "math": "math"}
MAX_LENGTH = 256


def make_data(n: int = 1600, seed: int = 0) -> CurriculumData:
    rng = random.Random(seed)
    sources = [list(TASKS)[(i * 7) % 4] for i in range(n)]
    raw = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0, None]) for _ in range(n)]  # ties and unrated, as prepared data has
    return CurriculumData(tuple(sources), tuple(rng.randint(12, 200) for _ in range(n)),
                          tuple(combine_difficulty("rules", raw, sources)), tuple(TASKS[s] for s in sources))


DATA = make_data()


def cfg_for(strategy: str, packing: bool = True, **kw: object) -> SFTConfig:
    return SFTConfig(max_steps=40, batch_size=2, gradient_accumulation_steps=3, max_length=MAX_LENGTH, packing=packing,
                     seed=5, curriculum={"strategy": strategy, "curiosity_probe_every": 4, **kw})


def probe_loss(name: str, step: int) -> float:
    """A deterministic held-out loss: buckets fall at different speeds, one stays flat."""
    k = sum(map(ord, name)) % 5
    return 3.0 - 0.002 * k * step + 0.0005 * ((step * 7 + k) % 3)


def drive(sampler, start: int, stop: int) -> list[list[list[int]]]:
    """What the loop will do each step: probe when asked, draw the rows, report the training loss."""
    out = []
    for step in range(start, stop):
        if sampler.wants_probe(step):
            sampler.observe(step, {b: probe_loss(b, step) for b in sampler.probe_sets()})
        rows = sampler.next_step(step)
        sampler.observe_train(step, 2.0 - 0.001 * step)
        out.append(rows)
    return out


@pytest.mark.parametrize("packing", [True, False])
@pytest.mark.parametrize("group_by_length", [False, True])
def test_random_is_todays_plan_across_epochs(packing, group_by_length):
    """`random` is the default, so it must be exactly the plan the loop makes today: no loss curve moves."""
    cfg = SFTConfig(batch_size=2, gradient_accumulation_steps=3, max_length=MAX_LENGTH, packing=packing, seed=5,
                    group_by_length=group_by_length, epochs=2.5)
    sampler = build_sampler(cfg, DATA, global_batch=12)
    today = []
    for epoch in range(3):
        today += plan_epoch(DATA.lengths, epoch_order(len(DATA), 5, epoch), 12, packing, MAX_LENGTH, seed=5 + epoch,
                            group_by_length=group_by_length)
    assert isinstance(sampler, RandomSampler)
    assert sampler.steps_per_epoch == len(plan_epoch(DATA.lengths, epoch_order(len(DATA), 5, 0), 12, packing,
                                                     MAX_LENGTH, seed=5, group_by_length=group_by_length))
    assert sampler.total_steps == -(-5 * sampler.steps_per_epoch // 2)  # ceil(epochs x steps per epoch), as the loop
    assert [sampler.next_step(s) for s in range(len(today))] == today


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_plan_other_seed_other_plan(strategy):
    a = drive(build_sampler(cfg_for(strategy), DATA, 12), 0, 30)
    b = drive(build_sampler(cfg_for(strategy), DATA, 12), 0, 30)
    c = drive(build_sampler(cfg_for(strategy).model_copy(update={"seed": 6}), DATA, 12), 0, 30)
    assert a == b and a != c


@pytest.mark.parametrize("packing", [True, False])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_restored_sampler_continues_exactly_as_the_uninterrupted_one(strategy, packing):
    """The state goes through JSON (the checkpoint's trainer state), then the rest must be identical."""
    whole = build_sampler(cfg_for(strategy, packing), DATA, 12)
    ref = drive(whole, 0, 37)
    first = build_sampler(cfg_for(strategy, packing), DATA, 12)
    head = drive(first, 0, 13)  # 13: between two curiosity measurements, with plays pending
    state = json.loads(json.dumps(first.state_dict()))
    resumed = build_sampler(cfg_for(strategy, packing), DATA, 12)
    resumed.load_state_dict(state)
    assert head + drive(resumed, 13, 37) == ref
    assert resumed.metrics() == whole.metrics()
    assert resumed.state_dict() == whole.state_dict()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_processes_take_disjoint_shares_that_cover_the_step(strategy):
    """Every process computes the same rows; cut into micro-batches, each takes its own (loop.StepStream)."""
    ranks = [build_sampler(cfg_for(strategy), DATA, 12) for _ in range(2)]
    plans = [drive(s, 0, 25) for s in ranks]
    assert plans[0] == plans[1]
    for rows in plans[0]:
        groups = [rows[i:i + 2] for i in range(0, len(rows), 2)]
        shares = [[i for mb in my_share(groups, r, 2) for row in mb for i in row] for r in range(2)]
        assert not set(shares[0]) & set(shares[1])
        assert sorted(shares[0] + shares[1]) == sorted(i for row in rows for i in row)
        assert len({i for row in rows for i in row}) == sum(map(len, rows))  # no example twice in a step


@pytest.mark.parametrize("packing", [True, False])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_steps_are_global_batches_of_rows_packed_to_max_length(strategy, packing):
    sampler = build_sampler(cfg_for(strategy, packing), DATA, 12)
    fills = []
    for rows in drive(sampler, 0, 30):
        assert 0 < len(rows) <= 12
        for row in rows:
            tokens = sum(DATA.lengths[i] for i in row)
            assert tokens <= MAX_LENGTH and (packing or len(row) == 1)
            fills.append(tokens / MAX_LENGTH)
    if packing:
        assert sum(fills) / len(fills) > 0.9  # rows are packed, not one example each


def test_stratified_rows_follow_the_weights():
    sampler = build_sampler(cfg_for("stratified", weights={"gsm8k": 3, "math": 1}), DATA, 12)
    per = {"gsm8k": 0, "math": 0}
    first_micro_batches = set()
    for rows in drive(sampler, 0, 40):
        for row in rows:
            assert len({DATA.sources[i] for i in row}) == 1  # a packed row is one source's
            per[DATA.sources[row[0]]] += 1
        first_micro_batches.add(tuple(sorted(DATA.sources[r[0]] for r in rows[:2])))
    assert per == {"gsm8k": 360, "math": 120}
    assert ("gsm8k", "math") in first_micro_batches  # rows are shuffled, so micro-batches mix sources
    natural = build_sampler(cfg_for("stratified"), DATA, 12)
    tokens = {s: sum(n for src, n in zip(DATA.sources, DATA.lengths, strict=True) if src == s) for s in TASKS}
    weights = {r["group"]: r["weight"] for r in natural.table()}
    assert weights == {s: round(t / sum(tokens.values()), 4) for s, t in tokens.items()}
    with pytest.raises(UserError, match="`poetry`, which is not a source"):
        build_sampler(cfg_for("stratified", weights={"poetry": 1}), DATA, 12)


def test_ordered_goes_easy_to_hard_within_each_epoch():
    sampler = build_sampler(cfg_for("ordered", packing=False), DATA, 12)
    steps = drive(sampler, 0, len(DATA) // 12)
    mean = [sum(DATA.difficulty[r[0]] for r in rows) / len(rows) for rows in steps]
    assert mean == sorted(mean)
    drawn = [i for rows in steps for r in rows for i in r]
    assert len(set(drawn)) == len(drawn) == len(DATA) // 12 * 12  # one epoch: each example once
    assert sum(DATA.difficulty[r[0]] for r in sampler.next_step(40)) < sum(DATA.difficulty[r[0]] for r in steps[-1])


def test_competence_draws_only_eligible_examples_then_everything():
    cfg = cfg_for("competence", competence_until=0.5)  # 40 steps: competence reaches 1 at step 20
    sampler = build_sampler(cfg, DATA, 12)
    late = set()
    for step in range(40):
        rows = sampler.next_step(step)
        c = competence(step, 20, 0.01, 2)
        assert sampler.metrics() == {"curriculum/competence": c}
        assert all(DATA.difficulty[i] <= c for row in rows for i in row)
        if step >= 20:
            late |= {i for row in rows for i in row}
    assert max(DATA.difficulty[i] for i in late) == max(DATA.difficulty)
    at_start = {i for row in build_sampler(cfg, DATA, 12).next_step(0) for i in row}
    assert {DATA.difficulty[i] for i in at_start} == {0.0}  # every source's easiest examples, only them


def test_stages_follow_the_task_order_and_blend_at_the_seams():
    sampler = build_sampler(cfg_for("stages", stage_overlap=0.2), DATA, 12)
    assert [r["group"] for r in sampler.table()] == ["books", "gsm8k", "math", "logic"]  # by task, not by name
    by_step = [{DATA.sources[i] for row in rows for i in row} for rows in drive(sampler, 0, 40)]
    assert by_step[0] == {"books"} and by_step[15] == {"gsm8k"} and by_step[39] == {"logic"}
    assert by_step[10] == {"books", "gsm8k"}  # step 10 of 40 is the first seam
    custom = build_sampler(cfg_for("stages", stage_order=["logic", "math", "gsm8k", "books"]), DATA, 12)
    assert {DATA.sources[i] for row in custom.next_step(0) for i in row} == {"logic"}
    with pytest.raises(UserError, match="leaves out `books`"):
        build_sampler(cfg_for("stages", stage_order=["logic", "math", "gsm8k"]), DATA, 12)


def test_curiosity_never_trains_on_its_probes_and_reports_every_bucket():
    sampler = build_sampler(cfg_for("curiosity"), DATA, 12)
    probes = sampler.held_out()
    names = list(sampler.probe_sets())
    assert names == [r["group"] for r in sampler.table()] and names[:3] == ["books:easy", "books:medium", "books:hard"]
    assert len(probes) == 8 * len(names) and {n.split(":")[0] for n in names} == set(TASKS)
    trained = {i for rows in drive(sampler, 0, 40) for row in rows for i in row}
    assert not trained & probes
    assert set(sampler.metrics()) == {f"curriculum/{k}/{b}" for k in ("p", "loss") for b in names}
    assert sum(v for k, v in sampler.metrics().items() if k.startswith("curriculum/p/")) == pytest.approx(1.0)
    assert sampler.wants_probe(40) and not sampler.wants_probe(41)
    assert all(r["probe"] == 8 for r in sampler.table())
    sampler.observe(40, {b: 1.0 for b in names})
    assert not sampler.wants_probe(40)  # a step the loop repeats (skipped non-finite) is not measured twice
    with pytest.raises(ValueError, match="missing"):
        sampler.observe(44, {names[0]: 1.0})
    assert "books:easy" in describe(sampler) and "probe" in describe(sampler).splitlines()[1]


def test_small_sources_get_fewer_buckets():
    sources = ["big"] * 200 + ["mid"] * 80 + ["small"] * 40 + ["tiny"] * 3
    n = len(sources)
    data = CurriculumData(tuple(sources), (30,) * n, tuple(rank_within_source(sources, list(range(n)))), (None,) * n)
    sampler = build_sampler(cfg_for("curiosity"), data, 4)
    # a band needs 4 x 8 probe examples: mid's thirds (27, 27, 26) become 54 + 26, and the small rest joins
    assert [(r["group"], r["examples"] + r["probe"], r["probe"]) for r in sampler.table()] == [
        ("big:easy", 67, 8), ("big:medium", 67, 8), ("big:hard", 66, 8), ("mid:all", 80, 8), ("small:all", 40, 8),
        ("tiny:all", 3, 1)]


def test_a_state_from_another_strategy_or_data_is_refused():
    state = build_sampler(cfg_for("stratified"), DATA, 12).state_dict()
    with pytest.raises(UserError, match="curriculum.strategy=stratified"):
        build_sampler(cfg_for("ordered"), DATA, 12).load_state_dict(state)
    with pytest.raises(UserError, match="other training data"):
        build_sampler(cfg_for("stratified"), make_data(seed=1), 12).load_state_dict(state)


def test_random_resumed_with_another_global_batch_keeps_its_share_of_the_epoch(caplog):
    first = build_sampler(cfg_for("random"), DATA, 12)
    drive(first, 0, 6)
    other = build_sampler(cfg_for("random"), DATA, 24)
    other.load_state_dict(first.state_dict())
    assert other.state_dict()["index"] == 3 and "re-planned" in caplog.text


def test_a_group_smaller_than_a_step_repeats_examples_and_says_so(caplog):
    """Steps stay full (equal tokens per step for every sampler); the log names the group that repeats."""
    sources = ["big"] * 300 + ["small"] * 10
    data = CurriculumData(tuple(sources), (100,) * 310, (0.0,) * 310, (None,) * 310)
    sampler = build_sampler(cfg_for("stages", stage_order=["small", "big"]), data, 12)
    assert "small holds less than the rows of a step" in caplog.text
    rows = sampler.next_step(0)
    assert len(rows) == 12 and all(sum(data.lengths[i] for i in r) == 200 for r in rows)  # full rows
    assert sorted({i for r in rows for i in r}) == list(range(300, 310))  # all ten, each more than once


def test_a_record_from_before_the_samplers_resumes_as_random_at_its_position():
    """A checkpoint whose record holds only today's plan position (sampler ``{"name": "shuffled"}``)."""
    from curiosity_sft.curriculum.samplers import saved_state

    whole = build_sampler(cfg_for("random"), DATA, 12)
    ref = drive(whole, 0, 20)
    resumed = build_sampler(cfg_for("random"), DATA, 12)
    position = {"epoch": 0, "index": 7}
    resumed.load_state_dict(saved_state({"name": "shuffled"}, position, 12, 7, DATA))
    assert drive(resumed, 7, 20) == ref[7:]
    current = build_sampler(cfg_for("curiosity"), DATA, 12).state_dict()
    assert saved_state(current, position, 12, 7, DATA) is current  # a current record is used as it is
    with pytest.raises(UserError, match="curriculum.strategy=random"):
        build_sampler(cfg_for("curiosity"), DATA, 12).load_state_dict(saved_state({}, position, 12, 7, DATA))
