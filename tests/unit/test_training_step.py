"""OOM recovery keeps the step exact, NaN guard, accumulation invariance, atomic checkpoints."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from curiosity_sft.errors import UserError
from curiosity_sft.training import checkpoint as ckpt_mod
from curiosity_sft.training import step as step_mod
from curiosity_sft.training.batching import collate, encode_all
from curiosity_sft.training.checkpoint import find_checkpoint
from curiosity_sft.training.loop import train
from curiosity_sft.training.step import StepRunner
from tiny_run import tiny_config, write_data


def micro_batches(tok):
    from curiosity_sft.data.schema import Example, chat

    exs = [Example(id=f"c{i}", source="gsm8k", messages=chat(f"What is {i} times 3?", f"{i} x 3 = {3 * i}." * (1 + i % 3)))
           for i in range(8)]
    enc = encode_all(exs, tok, 256).kept
    return [collate([[e] for e in enc[k:k + 4]], tok.pad_token_id) for k in (0, 4)]


def make_runner(model, split=1):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3)
    return StepRunner(model, opt, params, torch.device("cpu"), None, None, 1.0, split=split)


def accumulate(model, micro):
    """(runner, loss, n_real, gradients) of one step's accumulation."""
    runner = make_runner(model)
    loss, n_real = runner.accumulate(micro)
    return runner, loss, n_real, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


class _OOMInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        raise torch.OutOfMemoryError("injected in backward")


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_oom_halves_micro_batch_and_keeps_the_step_exact(tok, tiny_model, monkeypatch, where):
    micro = micro_batches(tok)
    _, ref_loss, ref_real, ref_grads = accumulate(copy.deepcopy(tiny_model), micro)

    real = step_mod.sum_token_loss
    calls = {"n": 0}

    def flaky(model, b):
        calls["n"] += 1
        s, k = real(model, b)
        if calls["n"] == 2:  # the second micro-batch (4 rows) runs out of memory
            if where == "forward":
                raise torch.OutOfMemoryError("injected in forward")
            s = _OOMInBackward.apply(s)
        return s, k

    monkeypatch.setattr(step_mod, "sum_token_loss", flaky)
    runner, loss, n_real, grads = accumulate(tiny_model, micro)
    assert runner.split == 2  # persists for later steps: micro-batch halved, accumulation doubled
    assert n_real == ref_real and loss == pytest.approx(ref_loss, rel=1e-5)
    assert grads.keys() == ref_grads.keys()
    for n, g in grads.items():
        assert torch.allclose(g, ref_grads[n], rtol=1e-4, atol=1e-7), n
    runner.optimizer.zero_grad(set_to_none=True)
    # later steps run at the new size: 2 planned micro-batches -> 4 pieces of 2 rows
    calls["n"] = 100
    seen = []
    monkeypatch.setattr(step_mod, "sum_token_loss", lambda m, b: (seen.append(b.n_rows), real(m, b))[1])
    runner.run(micro)
    assert seen == [2, 2, 2, 2]


def test_oom_on_a_single_row_is_a_clear_error(tok, tiny_model, monkeypatch):
    def oom(model, b):
        raise torch.OutOfMemoryError("injected")

    monkeypatch.setattr(step_mod, "sum_token_loss", oom)
    with pytest.raises(UserError, match="single row"):
        make_runner(tiny_model).run(micro_batches(tok))


class FakeEngine:
    """The DeepSpeed engine calls EngineStepRunner makes, recorded (the real engine runs in test_distributed)."""

    def __init__(self, model, applied=True):
        self.module, self.applied, self.calls = model, applied, []
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.0)

    def gradient_clipping(self):
        return 1.0

    def backward(self, loss, scale_wrt_gas=True):
        self.calls.append(("backward", scale_wrt_gas))
        loss.backward()

    def step(self):
        self.calls.append("step")

    def get_global_grad_norm(self):
        return 2.5

    def was_step_applied(self):
        return self.applied


def one_process(forward):
    from curiosity_sft.training.distributed import Parallelism, World

    par = Parallelism(World(None, 0, 1, torch.device("cpu")))
    par.module = lambda ids, labels, pos: forward(step_mod.Batch(ids, labels, pos, ()))
    return par


@pytest.mark.parametrize("applied", [True, False])
def test_deepspeed_steps_accumulate_unscaled_and_step_once(tok, tiny_model, applied):
    from curiosity_sft.training.zero import EngineStepRunner

    engine = FakeEngine(tiny_model, applied)
    forward = lambda b: step_mod.sum_token_loss(tiny_model, b)  # noqa: E731
    runner = EngineStepRunner(engine, list(tiny_model.parameters()), torch.device("cpu"), None,
                              one_process(forward))
    out = runner.run(micro_batches(tok))
    # our loss is already normalised over the global batch: the engine must not divide it again
    assert engine.calls == [("backward", False), ("backward", False), "step"]
    assert out.grad_norm == 2.5 and out.applied is applied and not out.scale_overflow


def test_deepspeed_oom_in_backward_is_a_clear_error(tok, tiny_model):
    from curiosity_sft.training.zero import EngineStepRunner

    forward = lambda b: (lambda s, k: (_OOMInBackward.apply(s), k))(*step_mod.sum_token_loss(tiny_model, b))  # noqa: E731
    runner = EngineStepRunner(FakeEngine(tiny_model), list(tiny_model.parameters()), torch.device("cpu"), None,
                              one_process(forward))
    with pytest.raises(UserError, match="out of memory in a backward pass under DeepSpeed"):
        runner.run(micro_batches(tok))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("data"))


def losses(out):
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if "loss" in r]


@pytest.mark.parametrize("packing", [False, True])
def test_same_global_batch_gives_the_same_loss_curve(data, tmp_path, packing):
    """micro-batch x accumulation = 4 x 1, 2 x 2, 1 x 4: the loss is normalised over the whole step."""
    curves = []
    for bs, acc in ((4, 1), (2, 2), (1, 4)):
        cfg = tiny_config(*data, batch_size=bs, gradient_accumulation_steps=acc, max_steps=4, val_file=None,
                          packing=packing, save_steps=100, max_length=128)
        train(cfg, tmp_path / f"{bs}x{acc}", show_progress=False)
        curves.append(losses(tmp_path / f"{bs}x{acc}"))
    assert len(curves[0]) == 4
    for c in curves[1:]:
        assert c == pytest.approx(curves[0], rel=2e-5)


def test_non_finite_steps_are_skipped_then_stop_with_the_checkpoint_intact(data, tmp_path, monkeypatch):
    real = step_mod.sum_token_loss
    calls = {"n": 0}

    def poisoned(model, b):
        calls["n"] += model.training  # validation passes (eval mode) are not poisoned
        s, k = real(model, b)
        return (s * float("nan") if calls["n"] > 4 else s), k  # steps 1-2 fine (2 micro-batches each)

    monkeypatch.setattr(step_mod, "sum_token_loss", poisoned)
    out = tmp_path / "nan"
    cfg = tiny_config(*data, save_steps=2, max_nonfinite_steps=3, max_steps=10)
    with pytest.raises(UserError, match="3 non-finite steps in a row"):
        train(cfg, out, show_progress=False)
    assert find_checkpoint("latest", out).name == "checkpoint-2"
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_nonfinite"] for r in recs if "skipped_nonfinite" in r] == [1, 2, 3]


def test_a_checkpoint_that_fails_mid_write_is_never_seen(data, tmp_path, monkeypatch):
    out = tmp_path / "crash"
    train(tiny_config(*data, max_steps=3, val_file=None), out, show_progress=False)
    real_save = torch.save

    def failing(obj, path, *a, **k):
        if "scheduler" in str(path):
            raise OSError("disk full")
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(ckpt_mod.torch, "save", failing)
    with pytest.raises(OSError):
        train(tiny_config(*data, max_steps=6, val_file=None), out, resume_from="latest", show_progress=False)
    assert find_checkpoint("latest", out).name == "checkpoint-3"
    assert not list(out.glob(".checkpoint-*.tmp"))  # defect 10: the failed save's folder used to stay


@pytest.mark.parametrize("saved, rank, world, expect", [
    ("list", 1, 2, 1),  # same process count: each process its own stream
    ("list", 1, 3, 0),  # another count: micro-batches move between processes, all take process 0's
    ("dict", 1, 2, 0),  # a checkpoint from before per-process streams
])
def test_each_process_resumes_its_own_rng_stream(tmp_path, saved, rank, world, expect):
    from curiosity_sft.training.checkpoint import TrainingState, _load_rngs, rng_state

    streams = []
    for seed in (10, 11):
        torch.manual_seed(seed)
        streams.append(rng_state())
    torch.save(streams if saved == "list" else streams[0], tmp_path / "rng.pt")
    state = TrainingState(0, {}, 4, 2, 1, 1, {}, {}, {}, rngs=_load_rngs(tmp_path / "rng.pt"))
    assert torch.equal(state.rng_for(rank, world)["torch"], streams[expect]["torch"])
