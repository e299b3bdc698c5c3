"""The speed options wired into a run: measured precision, fused AdamW, kernel options and their refusals."""

from __future__ import annotations

import json
import logging
import sys
import types

import pytest
import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.errors import UserError
from curiosity_sft.training import kernels
from curiosity_sft.training import precision as prec
from curiosity_sft.training.optimizer import build_adamw, fused_adamw_supported, optimizer_name
from curiosity_sft.training.precision import MatmulRates
from tiny_run import tiny_config, write_data

FAST = MatmulRates(188.0, 882.0, 2)
SLOW = MatmulRates(114.0, 0.9, 2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("d"), n_train=16, n_val=4)


@pytest.mark.parametrize("rates,want", [(FAST, "bf16"), (SLOW, "fp32")])
def test_auto_precision_trains_what_was_measured_and_records_it(data, tmp_path, monkeypatch, caplog, rates, want):
    from curiosity_sft.training.loop import train

    monkeypatch.setattr(prec, "cpu_rates", lambda: rates)  # the probe's measurement, injected
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        train(tiny_config(*data, precision="auto", max_steps=2, val_file=None), out, show_progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"]["precision"] == want
    assert manifest["precision"]["matmul_gflops"] == {"fp32": 188.0 if rates is FAST else 114.0,
                                                      "bf16": rates.bf16_gflops, "threads": 2, "source": "measured"}
    assert f"precision: {want} (auto:" in caplog.text
    assert manifest["optimizer"] == "AdamW (fused)"
    rec = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()][-1]
    # MFU is taken against the rate of the precision trained in: a bf16 run's is ~4.7x smaller here
    flops_per_s = rec["mfu"] * rates.rate_of(torch.bfloat16 if want == "bf16" else None)
    assert flops_per_s > 0 and rec["mfu"] < 1


def test_optimizer_is_fused_where_torch_has_the_kernel():
    p = [torch.nn.Parameter(torch.randn(4, 3))]
    assert fused_adamw_supported(p) and optimizer_name(build_adamw(p, 1e-3, 0.0)) == "AdamW (fused)"
    meta = [torch.nn.Parameter(torch.empty(4, device="meta"))]  # no fused kernel for this device
    assert not fused_adamw_supported(meta) and optimizer_name(build_adamw(meta, 1e-3, 0.0)) == "AdamW (foreach)"
    assert not fused_adamw_supported([])


def test_fused_and_foreach_adamw_take_the_same_steps():
    g = torch.Generator().manual_seed(0)
    init, grads = torch.randn(50, 7, generator=g), [torch.randn(50, 7, generator=g) for _ in range(3)]
    finals = []
    for fused in (True, False):
        p = torch.nn.Parameter(init.clone())
        opt = torch.optim.AdamW([p], lr=1e-2, weight_decay=0.1, fused=fused, foreach=None if fused else True)
        for gr in grads:
            p.grad = gr.clone()
            opt.step()
        finals.append(p.detach())
    torch.testing.assert_close(finals[0], finals[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("sets,message", [
    (["attn_implementation=flash_attention_2"], "attn_implementation: flash_attention_2 needs a CUDA GPU"),
    (["use_liger=true"], "use_liger: Liger's kernels need a CUDA GPU"),
])
def test_gpu_only_options_on_cpu_are_one_line_exit_2(data, tmp_path, capsys, sets, message):
    from curiosity_sft.cli import main

    args = ["train", "--output", str(tmp_path / "o"), "--set", f"train_file={data[0]}", "--set", "val_file=null",
            "--set", "hidden_dim=64", "--set", "num_layers=2", "--set", "device=cpu"]
    for s in sets:
        args += ["--set", s]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1 and "(set " in err  # what to do instead
    assert not (tmp_path / "o" / "config.yaml").exists()  # refused before anything was loaded or written


def test_gpu_options_need_their_packages_on_cuda(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(kernels, "_installed", lambda name: False)
    with pytest.raises(UserError, match="needs the flash-attn package"):
        kernels.check_kernel_options(SFTConfig(attn_implementation="flash_attention_2"), cuda)
    with pytest.raises(UserError, match="need the liger-kernel package"):
        kernels.check_kernel_options(SFTConfig(use_liger=True), cuda)
    monkeypatch.setattr(kernels, "_installed", lambda name: True)
    kernels.check_kernel_options(SFTConfig(attn_implementation="flash_attention_2", use_liger=True), cuda)


def test_compile_without_a_compiler_is_refused(monkeypatch):
    monkeypatch.setattr(kernels.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="needs a C.. compiler"):
        kernels.check_kernel_options(SFTConfig(compile=True), torch.device("cpu"))


def test_liger_is_applied_to_the_instance_without_its_loss(monkeypatch, tiny_model):
    calls = []
    fake = types.ModuleType("liger_kernel.transformers")
    fake._apply_liger_kernel_to_instance = lambda **kw: calls.append(kw)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "liger_kernel", types.ModuleType("liger_kernel"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", fake)
    kernels.apply_liger(tiny_model)
    assert calls == [{"model": tiny_model, "cross_entropy": False, "fused_linear_cross_entropy": False}]


def test_attention_implementation_reaches_the_model_and_packed_rows_agree(tok):
    """eager and sdpa build their masks from the position ids: packed rows give the same loss."""
    from curiosity_sft.data.schema import Example, chat
    from curiosity_sft.models import load_model
    from curiosity_sft.training.batching import collate, encode_all
    from curiosity_sft.training.loss import sum_token_loss

    enc = encode_all([Example(id=str(i), source="s", messages=chat(f"q{i} " * (i + 2), f"a{i} " * (3 * i + 1)))
                      for i in range(5)], tok, 256).kept
    batch = collate([enc[:3], enc[3:]], tok.pad_token_id)
    losses = {}
    for impl in ("eager", "sdpa"):
        model = load_model("smollm2-135m-instruct", hidden_dim=64, num_layers=2, seed=0, attn_implementation=impl)
        assert model.config._attn_implementation == impl
        losses[impl] = float(sum_token_loss(model, batch)[0])
    single = sum(float(sum_token_loss(model, collate([[e]], tok.pad_token_id))[0]) for e in enc)
    assert losses["eager"] == pytest.approx(losses["sdpa"], rel=1e-5)
    assert losses["sdpa"] == pytest.approx(single, rel=1e-5)  # no attention across packed examples


@pytest.mark.slow
def test_compiled_layers_train_to_the_same_loss(data, tmp_path):
    """compile: true changes kernels, not results (and checkpoints keep their parameter names)."""
    from curiosity_sft.training.loop import train

    runs = {}
    for flag in (False, True):
        out = tmp_path / f"c{flag}"
        train(tiny_config(*data, compile=flag, max_steps=2, val_file=None), out, show_progress=False)
        runs[flag] = [json.loads(x)["loss"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert runs[True] == pytest.approx(runs[False], rel=1e-4)
