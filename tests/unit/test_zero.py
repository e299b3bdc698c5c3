"""The DeepSpeed config: the launcher decides sharding, the training config everything else."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.errors import UserError
from curiosity_sft.training.zero import engine_config, launcher_config

LAUNCHER = {"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": 1,
            "gradient_clipping": 1.0, "zero_optimization": {"stage": 3}}


def cfg(**kw):
    return SFTConfig(**{"batch_size": 2, "gradient_accumulation_steps": 3, "max_grad_norm": 0.5, **kw})


def test_training_config_fills_batch_accumulation_and_clipping(caplog):
    with caplog.at_level(logging.WARNING):
        c = engine_config(LAUNCHER, cfg(), accumulation=3, world_size=8, hidden_size=64, amp=None)
    assert c["train_micro_batch_size_per_gpu"] == 2 and c["gradient_accumulation_steps"] == 3
    assert c["train_batch_size"] == 2 * 3 * 8
    assert c["gradient_clipping"] == 0.5
    assert c["managed_gradient_accumulation"] is False  # backward accumulates, our step() is the boundary
    assert c["zero_optimization"] == {"stage": 3}
    assert "gradient_clipping 1.0 ignored" in caplog.text  # the launcher's differing value is named, not silently lost
    assert LAUNCHER["train_batch_size"] == "auto"  # the input is not modified


def test_optimizer_scheduler_and_precision_sections_are_dropped(caplog):
    launcher = {**LAUNCHER, "optimizer": {"type": "AdamW", "params": {"lr": "auto"}},
                "scheduler": {"type": "WarmupLR"}, "bf16": {"enabled": True}, "fp16": {"enabled": "auto"}}
    with caplog.at_level(logging.WARNING):
        c = engine_config(launcher, cfg(), 3, 2, 64, None)
    assert not {"optimizer", "scheduler", "bf16", "fp16"} & set(c)
    assert "'optimizer' section ignored" in caplog.text and "bf16 section ignored" in caplog.text


def test_auto_bucket_sizes_follow_the_hidden_size_and_other_autos_are_named():
    launcher = {**LAUNCHER, "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto",
                                                  "stage3_prefetch_bucket_size": "auto",
                                                  "stage3_param_persistence_threshold": "auto"}}
    z = engine_config(launcher, cfg(), 3, 2, 100, None)["zero_optimization"]
    assert (z["reduce_bucket_size"], z["stage3_prefetch_bucket_size"], z["stage3_param_persistence_threshold"]) == \
        (10_000, 9_000, 1_000)
    launcher["zero_optimization"]["sub_group_size"] = "auto"
    with pytest.raises(UserError, match=r'zero_optimization\.sub_group_size as "auto"'):
        engine_config(launcher, cfg(), 3, 2, 100, None)


def test_fp16_and_zero_stage_0_are_refused_with_a_fix():
    with pytest.raises(UserError, match="fp16 with DeepSpeed.*precision: bf16"):
        engine_config(LAUNCHER, cfg(), 3, 2, 64, torch.float16)
    with pytest.raises(UserError, match="zero_stage 0.*ddp.yaml"):
        engine_config({**LAUNCHER, "zero_optimization": {"stage": 0}}, cfg(), 3, 2, 64, None)
    engine_config(LAUNCHER, cfg(), 3, 2, 64, torch.bfloat16)  # bf16 autocast over fp32 weights is fine


def test_launcher_settings_come_from_accelerates_environment(monkeypatch, tmp_path):
    """What ``accelerate launch`` exports for our YAML files, and a user's own DeepSpeed JSON."""
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "cpu")
    monkeypatch.setenv("ACCELERATE_GRADIENT_CLIPPING", "1.0")
    z = launcher_config()["zero_optimization"]
    assert z["stage"] == 3 and z["offload_optimizer"]["device"] == "cpu"

    ds = tmp_path / "ds.json"  # the shape of Hugging Face's example ZeRO-3 file
    ds.write_text(json.dumps({"train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
                              "bf16": {"enabled": "auto"}, "zero_optimization": {
                                  "stage": 3, "overlap_comm": True, "reduce_bucket_size": "auto",
                                  "stage3_prefetch_bucket_size": "auto",
                                  "stage3_param_persistence_threshold": "auto"}}))
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(ds))
    c = engine_config(launcher_config(), cfg(), 3, 2, 64, None)
    assert c["zero_optimization"]["overlap_comm"] is True and c["zero_optimization"]["reduce_bucket_size"] == 4096
    assert c["gradient_accumulation_steps"] == 3 and "bf16" not in c
