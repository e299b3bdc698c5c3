"""Config + launcher + hardware checked before anything loads, and the shipped configs (defect 9)."""

from __future__ import annotations

import re

import pytest
import torch

from conftest import ROOT
from curiosity_sft.cli import main
from curiosity_sft.config import load_config
from curiosity_sft.errors import UserError
from curiosity_sft.planning.memory import GIB
from curiosity_sft.training import loop as loop_mod
from curiosity_sft.training.distributed import FsdpSettings, Launch, World
from curiosity_sft.training.fsdp import FSDP2
from curiosity_sft.training.preflight import Hardware, launcher_env, preflight
from tiny_run import tiny_config, write_data

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
LAUNCHERS = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))
A100 = Hardware("cuda", "NVIDIA A100-SXM4-80GB", 80 * (1 << 30), bf16=True)
V100 = Hardware("cuda", "Tesla V100-SXM2-32GB", 32 * (1 << 30), bf16=False)


def failures(report):
    return [f"{c.name}: {c.detail}" for c in report.checks if c.status == "fail"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_gpu_config_fits_the_card_its_comment_names(path):
    text = path.read_text()
    card = re.search(r"^# Fits one (\d+) GB GPU", text, re.M)
    if card is None:
        assert re.search(r"^#.*\bon CPU\b", text, re.M), f"{path.name} names neither the GPU it fits nor CPU"
        return
    gib = int(card.group(1))
    report = preflight(load_config(path), Launch(), Hardware("cuda", f"a {gib} GB GPU", gib * (1 << 30), bf16=True),
                       check_files=False)
    memory = next(c for c in report.checks if c.name == "memory")
    assert memory.status == "ok", memory.detail  # before: rtx3090.yaml's bf16 14B LoRA base planned 35.6 GiB
    # the comment's figure is the planner's
    planned = re.search(r"planned peak ([\d.]+) GiB", memory.detail).group(1)
    assert f"{planned} GiB" in text


def test_the_seed_config_keeps_the_seeds_values_and_says_why_where_it_does_not():
    text = (ROOT / "configs" / "sft_config.yaml").read_text()
    cfg = load_config(ROOT / "configs" / "sft_config.yaml")
    assert cfg.gradient_accumulation_steps == 4 and cfg.learning_rate == 3e-5 and cfg.fp16
    if cfg.max_length != 512:  # the seed's value; a change must be explained right above it
        before = text[:text.index("max_length:")].splitlines()[-3:]
        assert any("The seed had 512" in ln for ln in before), before


@pytest.mark.parametrize("launcher", LAUNCHERS, ids=lambda p: p.stem)
def test_the_seed_config_passes_preflight_under_every_launcher(launcher):
    """Before: fp16: true meant fp16, which DeepSpeed refuses, and only after the 14B weights were loaded.
    Now the seed's key is mixed precision (bf16 on an A100) and every check runs before loading."""
    cfg = load_config(ROOT / "configs" / "sft_config.yaml")
    env = launcher_env(launcher)
    report = preflight(cfg, Launch.from_env(env), A100, env=env, check_files=False)
    assert report.amp == torch.bfloat16 and not failures(report)
    old_gpu = preflight(cfg, Launch.from_env(env), V100, env=env, check_files=False)
    if Launch.from_env(env).kind == "deepspeed":  # no bf16: fp16, which DeepSpeed refuses, before loading
        assert any("fp16 with DeepSpeed" in f for f in failures(old_gpu))


def test_a_combination_that_cannot_run_stops_before_any_weights_load(tmp_path, monkeypatch, capsys):
    train, val = write_data(tmp_path / "d", n_train=4, n_val=2)

    def no_loading(*a, **k):
        raise AssertionError("weights were loaded before the pre-flight checks stopped the run")

    monkeypatch.setattr(loop_mod, "build_model", no_loading)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0")
    cfg = tiny_config(train, val, max_steps=1)
    with pytest.raises(UserError, match="zero_stage 0"):
        loop_mod.train(cfg, tmp_path / "out", show_progress=False)
    assert not (tmp_path / "out").exists()
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    missing = tiny_config(tmp_path / "nope.jsonl", None, max_steps=1)
    with pytest.raises(UserError, match="train file not found"):
        loop_mod.train(missing, tmp_path / "out", show_progress=False)


def test_memory_that_cannot_fit_stops_with_the_planners_setting():
    cfg = load_config(ROOT / "configs" / "sft_config.yaml", ["max_length=4096"])
    card = Hardware("cuda", "a 48 GB GPU", 48 * (1 << 30), bf16=True)
    one = next(c for c in preflight(cfg, Launch(), card, check_files=False).checks if c.name == "memory")
    assert one.status == "warn"  # one process: out-of-memory recovery halves its way to micro-batch 1
    ddp = Launch.from_env(launcher_env(ROOT / "configs/accelerate/ddp.yaml"))
    many = preflight(cfg, ddp, card, check_files=False)
    with pytest.raises(UserError, match=r"does not fit \(--set batch_size=2 --set gradient_accumulation_steps=8 "):
        many.raise_first_failure()  # several processes cannot recover together: stop before loading
    fsdp = Launch.from_env(launcher_env(ROOT / "configs/accelerate/fsdp.yaml"))
    sharded = next(c for c in preflight(cfg, fsdp, card, check_files=False).checks if c.name == "memory")
    assert sharded.status == "ok"  # the base split over 8 GPUs fits


def test_plan_shows_the_same_checks(capsys):
    assert main(["plan", "--config", str(ROOT / "configs/sft_config.yaml"), "--gpu-memory", "48GB",
                 "--launcher", str(ROOT / "configs/accelerate/fsdp.yaml")]) == 0
    out = capsys.readouterr().out
    assert "pre-flight checks" in out and "| launcher | ok | FSDP2 full shard over 8 processes (reshard_after_forward " \
        "true, cpu_ram_efficient_loading true, activation_checkpointing false" in out
    assert "| precision | ok | bf16 autocast" in out and "| memory | ok |" in out


def test_fsdp_launcher_settings_reach_the_sharding(monkeypatch, tiny_model):
    """Before, fsdp_reshard_after_forward, fsdp_cpu_ram_efficient_loading and fsdp_activation_checkpointing
    from configs/accelerate/fsdp.yaml were ignored."""
    launch = Launch.from_env(launcher_env(ROOT / "configs/accelerate/fsdp.yaml"))
    assert launch.kind == "fsdp" and launch.fsdp == FsdpSettings(reshard_after_forward=True,
                                                                 cpu_ram_efficient_loading=True)
    on = Launch.from_env({**launcher_env(ROOT / "configs/accelerate/fsdp.yaml"), "FSDP_ACTIVATION_CHECKPOINTING": "true"})
    assert loop_mod.with_launcher_settings(tiny_config("t", None), on).gradient_checkpointing
    import torch.distributed.fsdp as fsdp_mod

    calls = []
    monkeypatch.setattr(fsdp_mod, "fully_shard", lambda module, **kw: calls.append(kw))
    par = FSDP2(World(None, 0, 2, torch.device("cpu")), FsdpSettings(reshard_after_forward=False))
    layers = list(tiny_model.model.layers)
    par.prepare(loop_mod.TokenLoss(tiny_model), layers)
    assert len(calls) == len(layers) + 1 and all(kw["reshard_after_forward"] is False for kw in calls)
    assert not par.loads_on_meta
    assert FSDP2(World(None, 1, 2, torch.device("cpu")), launch.fsdp).loads_on_meta  # rank 1 reads no weights


def test_gpu_memory_is_per_device_under_sharding():
    from curiosity_sft.planning.architectures import KNOWN
    from curiosity_sft.planning.memory import Setting, estimate
    from curiosity_sft.training.preflight import per_device_bytes

    e = estimate(KNOWN["deepseek-ai/deepseek-r1-distill-qwen-7b"], Setting("full", 1, 8, True), 1024)
    full8 = Launch(8, "fsdp")
    assert per_device_bytes(e, Launch(), 0) == e.total
    assert per_device_bytes(e, full8, 0) < e.total - 7 / 8 * (e.weights + e.optimizer) + GIB
    assert per_device_bytes(e, Launch(8, "deepspeed"), 2) > per_device_bytes(e, Launch(8, "deepspeed"), 3)
