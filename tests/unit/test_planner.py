"""The memory planner: architecture numbers, estimates, proposals, and estimate vs measured peak."""

from __future__ import annotations

import pytest

from curiosity_sft.cli import main
from curiosity_sft.errors import UserError
from curiosity_sft.planning.architectures import KNOWN, architecture_for
from curiosity_sft.planning.measure import Probe, measure
from curiosity_sft.planning.memory import GIB, Setting, estimate, parse_size, propose

R1_14B = KNOWN["deepseek-ai/deepseek-r1-distill-qwen-14b"]


def test_distill_parameter_counts_match_the_published_sizes():
    # Published totals (model cards / safetensors index): 1.78B, 7.62B, 14.77B; q/k/v biases
    # (< 0.01%) are left out of the planner's count.
    got = {a.name.split("-")[-1]: a.params / 1e9 for a in KNOWN.values()}
    assert got == pytest.approx({"1.5B": 1.777, "7B": 7.615, "14B": 14.765}, rel=2e-3)


def test_alias_and_fresh_model_sizes_agree_with_the_real_models(tiny_model):
    from curiosity_sft.models import count_parameters

    assert architecture_for("deepseekr1-qwen-12b") is R1_14B
    arch = architecture_for("smollm2-135m-instruct", 64, 2)
    assert arch.params == count_parameters(tiny_model)[1]
    assert architecture_for("smollm2-135m-instruct").params == 134_515_008  # SmolLM2-135M, embeddings tied


def test_estimate_components_follow_the_method():
    s = Setting("full", 1, 32, True)
    full = estimate(R1_14B, s, 2048)
    assert full.weights == 4 * R1_14B.params and full.optimizer == 8 * R1_14B.params
    lora = estimate(R1_14B, Setting("lora", 1, 32, True), 2048, lora_r=16)
    assert lora.weights == 2 * R1_14B.params + 4 * R1_14B.lora_params(16) and lora.gradients == 4 * R1_14B.lora_params(16)
    q = estimate(R1_14B, Setting("qlora", 1, 32, True), 2048)
    assert q.weights < lora.weights / 2.5
    no_ckpt = estimate(R1_14B, Setting("lora", 1, 32, False), 2048)
    assert no_ckpt.activations > 4 * lora.activations


def test_proposals_keep_the_global_batch_and_fit():
    p = propose(R1_14B, "lora", 32, 2048, 24 << 30)
    assert p.fits and p.setting.method == "qlora" and "lora does not fit" in p.note
    for card in (48, 80):
        p = propose(R1_14B, "lora", 32, 2048, card << 30)
        assert p.fits and p.setting.method == "lora"
        assert p.setting.micro_batch * p.setting.accumulation == 32
        assert p.estimate.total <= 0.92 * (card << 30)
    assert not propose(R1_14B, "qlora", 32, 2048, 8 << 30).fits


def test_parse_size():
    assert parse_size("24GB") == parse_size("24GiB") == parse_size("24") == 24 * (1 << 30)
    with pytest.raises(UserError):
        parse_size("lots")


def test_plan_command(capsys):
    assert main(["plan", "--gpu-memory", "80GB", "--set", "model_name=deepseek-r1-distill-qwen-7b"]) == 0
    out = capsys.readouterr().out
    assert "proposal: lora" in out and "--set batch_size=" in out


@pytest.mark.parametrize("probe", [Probe(256, 4, "full", 2, 256), Probe(256, 4, "lora", 2, 256)])
def test_estimate_is_within_20_percent_of_the_measured_cpu_peak(probe):
    r = measure(probe)
    assert r["measured_gib"] > 0.05
    assert 0.8 <= r["ratio"] <= 1.2, r


@pytest.mark.slow
def test_estimate_within_20_percent_for_smollm2_135m():
    r = measure(Probe(None, None, "full", 2, 256))
    assert 0.8 <= r["ratio"] <= 1.2, r
    assert r["estimated_gib"] * GIB > 0
