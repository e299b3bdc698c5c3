"""Core SFT invariants of the training engine, and golden loss curves that pin its numerics.

The golden curves (torchtune's recipe tests do the same) run the whole engine for five steps on a
tiny, freshly initialised model with a fixed seed and compare every step's loss with the values
written below. Any silent change to the numerics (the loss, its normalisation, the batching, the
data order, the optimizer, the schedule, the initialisation) fails here loudly; a deliberate
change updates the values and says why in its commit.

Where the values come from: `python -m pytest -q -s tests/unit/test_sft.py -k golden` printed
them (the `got` line), run on this project's 2-core CPU machine with torch 2.13.0+cpu and
transformers 5.24.0, fp32, on the branch that introduced them (issue 13). Two architectures:
SmolLM2's (Llama: tied embeddings, no biases) and Qwen2 (the R1 distills' family: q/k/v biases),
the latter built from a config dict in a folder, with SmolLM2's tokenizer.
"""

from __future__ import annotations

import json

import pytest
import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.training.checkpoint import TrainingState, rng_state
from curiosity_sft.training.loop import train
from tiny_run import tiny_config, write_data

# Relative tolerance: fp32 matmuls of other CPUs (other SIMD widths, other BLAS) sum in another
# order; 1e-4 is far above that noise (~1e-6 here) and far below any real change (>1e-3).
GOLDEN_RTOL = 1e-4

GOLDEN = {
    "llama": [10.833753108978271, 10.817730903625488, 10.613227844238281, 10.460472583770752, 10.386166095733643],
    "qwen2": [10.843286275863647, 10.860498428344727, 10.62608027458191, 10.530480861663818, 10.454882144927979],
}

QWEN2 = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 49152,
         "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False,
         "bos_token_id": 1, "eos_token_id": 2}


def qwen2_folder(tmp_path, tok):
    """A Qwen2 model folder from a config dict (no weights) with SmolLM2's tokenizer."""
    folder = tmp_path / "qwen2-tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(QWEN2))
    tok.save_pretrained(str(folder))
    return folder


def losses(out):
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


def five_steps(tmp_path, **kw):
    data = write_data(tmp_path / "data", n_train=24, n_val=2)
    cfg = tiny_config(*data, max_steps=5, val_file=None, save_steps=100, warmup_ratio=0.2, weight_decay=0.1, **kw)
    train(cfg, tmp_path / "run", show_progress=False)
    return losses(tmp_path / "run")


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_golden_loss_curve(tmp_path, tok, arch):
    kw = {} if arch == "llama" else {"model_name": str(qwen2_folder(tmp_path, tok))}
    got = five_steps(tmp_path, **kw)
    print(arch, "got", got)
    assert len(got) == 5
    assert got == pytest.approx(GOLDEN[arch], rel=GOLDEN_RTOL)


def test_loss_is_the_mean_over_the_trained_tokens_of_the_whole_step(tok, tiny_model):
    """Summed over micro-batches and divided once by the step's trained tokens, not averaged per micro-batch."""
    from test_training_step import micro_batches

    from curiosity_sft.training.loss import sum_token_loss
    from curiosity_sft.training.step import StepRunner

    micro = micro_batches(tok)
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    runner = StepRunner(tiny_model, torch.optim.SGD(params, lr=0.0), params, torch.device("cpu"), None, None, 1.0)
    loss, _ = runner.accumulate(micro)
    with torch.no_grad():
        sums = [sum_token_loss(tiny_model, b) for b in micro]
    assert loss == pytest.approx(sum(float(s) for s, _ in sums) / sum(k for _, k in sums), rel=1e-5)
    assert micro[0].n_trained != micro[1].n_trained  # so a per-micro-batch mean would differ


def test_the_training_state_record_round_trips_whole(tmp_path):
    torch.manual_seed(3)
    w = {"a": torch.randn(3, 2)}
    sched = {"last_epoch": 4, "_step_count": 5}
    state = TrainingState(step=4, position={"epoch": 1, "index": 2}, global_batch=8, world_size=2,
                          micro_batch_split=2, total_steps=10, weights=w,
                          optimizer={"state": {0: {"step": torch.tensor(4.0), "exp_avg": torch.ones(3, 2)}},
                                     "param_groups": [{"lr": 0.1, "params": [0]}]},
                          scheduler=sched, rngs=[rng_state(), rng_state()],
                          scaler={"scale": 1024.0, "_growth_tracker": 7}, sampler={"name": "shuffled"},
                          fingerprint={"seed": 1, "max_length": 64}, optimizer_order=["a"])
    path = state.save(tmp_path, SFTConfig(), keep=None)
    back = TrainingState.load(path)
    for key in ("step", "position", "global_batch", "world_size", "micro_batch_split", "total_steps", "scheduler",
                "scaler", "sampler", "fingerprint", "optimizer_order"):
        assert getattr(back, key) == getattr(state, key), key
    assert torch.equal(back.weights["a"], w["a"]) and torch.equal(back.optimizer["state"][0]["exp_avg"], torch.ones(3, 2))
    assert torch.equal(back.rngs[1]["torch"], state.rngs[1]["torch"])
    # every file loads without unpickling code (defect 10: rng.pt needed weights_only=False)
    for f in ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng.pt"):
        torch.load(path / f, weights_only=True)
