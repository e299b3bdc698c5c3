"""Precision from the hardware, QLoRA's CPU refusal and its bitsandbytes recipe, MFU arithmetic."""

from __future__ import annotations

import pytest
import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.errors import UserError
from curiosity_sft.models import check_qlora_available, qlora_quantization_config
from curiosity_sft.training.precision import autocast_dtype, weight_dtype

CUDA = torch.device("cuda")


@pytest.mark.parametrize("kw,device,bf16_ok,want", [  # CPU: tests/unit/test_precision.py
    ({}, CUDA, True, torch.bfloat16),
    ({}, CUDA, False, torch.float16),
    # the seed's fp16: true asks for mixed precision: bf16 where the GPU has it (an R1 distill, trained in
    # bf16, overflows in fp16), fp16 with loss scaling elsewhere; precision: fp16 still forces it (defect 4)
    ({"fp16": True}, CUDA, True, torch.bfloat16),
    ({"fp16": True}, CUDA, False, torch.float16),
    ({"precision": "fp16"}, CUDA, True, torch.float16),
    ({"bf16": True}, CUDA, False, torch.bfloat16),
    ({"precision": "fp32", "fp16": True}, CUDA, True, None),
])
def test_precision_is_chosen_from_the_hardware(kw, device, bf16_ok, want):
    assert autocast_dtype(SFTConfig(**kw), device, bf16_supported=bf16_ok) == want


def test_frozen_lora_base_uses_the_autocast_dtype_and_full_keeps_fp32_masters():
    assert weight_dtype(SFTConfig(peft_enable=True), torch.bfloat16) == torch.bfloat16
    # never an fp16 base: a base trained in bf16 overflows there (defect 4); only the matmuls run in fp16
    assert weight_dtype(SFTConfig(peft_enable=True), torch.float16) == torch.float32
    assert weight_dtype(SFTConfig(peft_enable=False), torch.bfloat16) == torch.float32
    assert weight_dtype(SFTConfig(peft_enable=True), None) == torch.float32


def test_qlora_recipe_and_clear_errors(monkeypatch):
    q = qlora_quantization_config(torch.bfloat16)
    assert q.load_in_4bit and q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert q.bnb_4bit_compute_dtype == torch.bfloat16
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        check_qlora_available(cuda_available=False)
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="needs the bitsandbytes package"):
        check_qlora_available(cuda_available=True)


def test_qlora_needs_lora():
    with pytest.raises(ValueError, match="peft_enable"):
        SFTConfig(load_in_4bit=True, peft_enable=False)


def test_qlora_run_on_cpu_is_one_line_exit_2(tmp_path, capsys):
    from curiosity_sft.cli import main
    from tiny_run import write_data

    train, val = write_data(tmp_path / "d", n_train=4, n_val=2)
    code = main(["train", "--output", str(tmp_path / "o"), "--set", f"train_file={train}", "--set", "val_file=null",
                 "--set", "load_in_4bit=true", "--set", "peft_enable=true", "--set", "hidden_dim=64",
                 "--set", "num_layers=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs a CUDA GPU" in err and len(err.splitlines()) == 1


def test_model_flops_golden():
    from types import SimpleNamespace

    from curiosity_sft.training.telemetry import model_flops

    c = SimpleNamespace(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                        intermediate_size=16, vocab_size=10, head_dim=None)
    # per layer: q,o 8*8 each; k,v 8*4 each; mlp 3*8*16 -> 128+64+384 = 576 weights
    # 6*2*576 + 12*2*2*4*context(3) = 6912 + 576 per token; head 6*8*10 = 480 per trained token
    assert model_flops(c, 3, n_real=5, n_trained=2) == 5 * (6912 + 576) + 2 * 480
    # LoRA: frozen weights cost 4 per token (no weight gradients); attention is unchanged
    assert model_flops(c, 3, n_real=5, n_trained=2, frozen_base=True) == 5 * (4608 + 576) + 2 * 320
