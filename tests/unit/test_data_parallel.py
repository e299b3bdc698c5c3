"""Data-parallel arithmetic, checked in one process: shares, loss scaling, batch rescaling on resume."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from test_training_step import micro_batches

from curiosity_sft.errors import UserError
from curiosity_sft.training.distributed import Parallelism, World, accumulation_for, my_share
from curiosity_sft.training.loss import sum_token_loss
from curiosity_sft.training.step import StepRunner, TokenLoss
from curiosity_sft.training.stream import without_labels as _without_labels


def two_ranks(model):
    """The arithmetic of one of two DDP ranks, without a process group (accumulate never communicates)."""
    par = Parallelism(World(None, 0, 2, torch.device("cpu")))
    par.prepare(TokenLoss(model), [])
    return par


def grads_of(model, micro, n_tokens, parallel=None):
    params = [p for p in model.parameters() if p.requires_grad]
    runner = StepRunner(model, torch.optim.SGD(params, lr=0.0), params, torch.device("cpu"), None, None, 1.0,
                        parallel=parallel)
    loss, _ = runner.accumulate(micro, n_tokens)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_two_ranks_averaged_like_ddp_equal_one_process(tok, tiny_model):
    micro = micro_batches(tok)
    n = sum(b.n_trained for b in micro)
    ref_loss, ref = grads_of(copy.deepcopy(tiny_model), micro, n)
    shares = []
    for r in (0, 1):
        model = copy.deepcopy(tiny_model)
        shares.append(grads_of(model, my_share(micro, r, 2), n, two_ranks(model)))
    # DDP all-reduce averages gradients over ranks; each rank reports its share of the loss
    assert sum(loss for loss, _ in shares) == pytest.approx(ref_loss, rel=1e-6)
    for name, g in ref.items():
        torch.testing.assert_close((shares[0][1][name] + shares[1][1][name]) / 2, g, rtol=1e-5, atol=1e-7)


def test_a_rank_without_data_joins_with_a_batch_that_trains_nothing(tok, tiny_model):
    b = _without_labels(micro_batches(tok)[0])
    assert b.n_trained == 0
    s, k = sum_token_loss(tiny_model, b)
    s.backward()
    assert k == 0 and float(s.detach()) == 0.0
    grads = [p.grad for p in tiny_model.parameters() if p.requires_grad]
    assert all(g is not None and not g.any() for g in grads)  # every parameter joins the all-reduce, with zeros


def test_my_share_is_every_world_th_micro_batch():
    assert my_share("abcde", 0, 2) == ["a", "c", "e"]
    assert my_share("abcde", 1, 2) == ["b", "d"]
    assert my_share("a", 1, 2) == []
    shares = [my_share(range(7), r, 3) for r in range(3)]
    assert sorted(x for s in shares for x in s) == list(range(7))  # none seen twice, none skipped


def test_keep_global_batch_accumulation():
    assert accumulation_for(8, 2, 2) == 2
    assert accumulation_for(8, 2, 4) == 1
    with pytest.raises(UserError, match="global batch 6 is not a multiple of batch_size 4 x 1"):
        accumulation_for(6, 4, 1)


def test_resume_position_same_batch_is_exact_other_batch_warns(caplog):
    """The data position lives in the `random` sampler's state (the training-state record's ``sampler``)."""
    from curiosity_sft.curriculum import CurriculumData
    from curiosity_sft.curriculum.samplers import RandomSampler, saved_state

    data = CurriculumData(("s",) * 40, (10,) * 40, (0.0,) * 40, (None,) * 40)

    def resumed(global_batch: int, state: dict) -> dict:
        sampler = RandomSampler(data, global_batch, False, 64, 0, 100)
        sampler.load_state_dict(state)
        return sampler.position()

    state = {"strategy": "random", "data": data.fingerprint(), "global_batch": 4, "drawn": 16, "epoch": 1, "index": 6}
    assert resumed(4, state) == {"epoch": 1, "index": 6}
    older = saved_state({}, {"epoch": 0, "index": 3}, 8, 3, data)  # a record from before the samplers
    assert resumed(8, older) == {"epoch": 0, "index": 3}
    with caplog.at_level(logging.WARNING):
        assert resumed(8, state) == {"epoch": 1, "index": 3}
    assert "--keep-global-batch" in caplog.text
