"""Regression tests for the training engine's defects of issue 13 that one process can show:
fingerprinted resume (7), the fp16 loss scale in the checkpoint (4), QLoRA's export (5), OOM under
several processes (6), MFU (8), and the smaller ones (10)."""

from __future__ import annotations

import json
import pickle
import random
import shutil

import pytest
import torch

from curiosity_sft.errors import UserError
from curiosity_sft.training import checkpoint as ckpt_mod
from curiosity_sft.training import loop as loop_mod
from curiosity_sft.training import step as step_mod
from curiosity_sft.training.batching import plan_epoch
from curiosity_sft.training.checkpoint import find_checkpoint, list_checkpoints
from curiosity_sft.training.distributed import Parallelism, World
from curiosity_sft.training.loop import train
from curiosity_sft.training.step import StepRunner, TokenLoss
from tiny_run import tiny_config, write_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("data"), n_train=24, n_val=2)


def losses(out):
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r}


def killed_after(out, step):
    """The folder a run killed right after checkpoint-``step`` leaves: later checkpoints and the final
    manifest gone, the manifest back at "running"."""
    for c in list_checkpoints(out):
        if int(c.name.split("-")[1]) > step:
            shutil.rmtree(c)
    m = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({"written_by": m["written_by"], "status": "running"}))


@pytest.fixture(scope="module")
def three_steps(data, tmp_path_factory):
    """A run stopped after checkpoint-3 of 6, copied fresh for each test that resumes it."""
    out = tmp_path_factory.mktemp("base") / "run"
    train(tiny_config(*data, val_file=None, max_steps=6, save_steps=3), out, show_progress=False)
    killed_after(out, 3)
    return out


@pytest.mark.parametrize("change, named", [
    ({"max_length": 200}, "max_length 256 -> 200"),
    ({"train_file": "other"}, "the train file's content"),
])
def test_resume_refuses_a_changed_data_plan_unless_forced(data, three_steps, tmp_path, change, named):
    out = tmp_path / "run"
    shutil.copytree(three_steps, out)
    if change.get("train_file") == "other":
        other = tmp_path / "other.jsonl"
        lines = data[0].read_text().splitlines()
        other.write_text("\n".join(lines[:-1]) + "\n")  # one example fewer: the same position, other examples
        change = {"train_file": str(other)}
    cfg = tiny_config(*data, val_file=None, max_steps=6, save_steps=3, **change)
    with pytest.raises(UserError) as e:
        train(cfg, out, resume_from="latest", show_progress=False)
    assert named in str(e.value) and "--force-resume" in str(e.value)
    assert train(cfg, out, resume_from="latest", show_progress=False, force_resume=True).steps == 6


@pytest.mark.parametrize("key, value, named", [
    ("tokenizer_sha256", "c", "the tokenizer or its chat template"), ("packing", False, "packing True -> False"),
    ("group_by_length", True, "group_by_length False -> True"), ("seed", 5, "seed 42 -> 5"),
    ("reasoning_format", "plain", "reasoning_format 'auto' -> 'plain'"),
    ("curriculum", {"strategy": "competence", "competence_p": 1}, "curriculum.competence_p 2 -> 1"),
])
def test_fingerprint_names_what_changed(tok, key, value, named):
    from curiosity_sft.config import SFTConfig
    from curiosity_sft.training.fingerprint import check_fingerprint, data_fingerprint
    saved = {"train_file_sha256": "a", "tokenizer_sha256": "b", "reasoning_format": "auto", "max_length": 8,
             "packing": True, "group_by_length": False, "seed": 42,
             "curriculum": {"strategy": "competence", "competence_p": 2}}
    with pytest.raises(UserError, match=named):
        check_fingerprint(saved, {**saved, key: value}, ckpt_mod.Path("ckpt"), force=False)
    check_fingerprint(saved, {**saved, key: value}, ckpt_mod.Path("ckpt"), force=True)  # forced: a warning
    assert set(data_fingerprint(SFTConfig(train_file=__file__), tok)) == set(saved)


def fp16_on_cpu(monkeypatch):
    """fp16 autocast with a GradScaler on the CPU (both run there), as on a GPU without bf16."""
    from curiosity_sft.training.precision import PrecisionChoice

    monkeypatch.setattr(loop_mod, "choose_precision", lambda *a, **kw: PrecisionChoice(torch.float16, "fp16 (test)"))


@pytest.mark.slow
def test_fp16_loss_scale_is_saved_and_resumed(data, tmp_path, monkeypatch):
    fp16_on_cpu(monkeypatch)
    ref, run = tmp_path / "ref", tmp_path / "run"
    cfg = tiny_config(*data, val_file=None, max_steps=6, save_steps=3)
    train(cfg, ref, show_progress=False)
    shutil.copytree(ref, run)
    killed_after(run, 3)
    scale3 = torch.load(run / "checkpoint-3" / "scaler.pt", weights_only=True)
    assert scale3["_growth_tracker"] == 3  # three unskipped steps counted towards the next growth
    train(cfg, run, resume_from="latest", show_progress=False)
    # Before the fix the scaler restarted at its defaults on resume (tracker 0 -> 3 at step 6, not 6)
    assert torch.load(run / "checkpoint-6" / "scaler.pt", weights_only=True) == \
        torch.load(ref / "checkpoint-6" / "scaler.pt", weights_only=True)
    a, b = losses(ref), losses(run)
    assert [b[s] for s in (4, 5, 6)] == [a[s] for s in (4, 5, 6)]


def test_a_lowered_fp16_scale_survives_a_checkpoint(tok, tiny_model, tmp_path):
    """Overflows lower the scale (the step is skipped); the lowered scale must come back on resume, or
    the resumed run overflows and skips batches again from 2^16."""
    from test_training_step import micro_batches

    from curiosity_sft.config import SFTConfig
    from curiosity_sft.training.checkpoint import TrainingState

    params = [p for p in tiny_model.parameters() if p.requires_grad]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 120)  # overflows fp16 gradients at once
    runner = StepRunner(tiny_model, torch.optim.AdamW(params, lr=1e-3), params, torch.device("cpu"), torch.float16,
                        scaler, 1.0)
    outcomes = [runner.run(micro_batches(tok)) for _ in range(3)]
    assert all(o.scale_overflow for o in outcomes) and scaler.get_scale() == 2.0 ** 117
    state = TrainingState(3, {"epoch": 0, "index": 3}, 8, 1, 1, 6, {"w": torch.zeros(1)}, {}, {}, [],
                          scaler=scaler.state_dict())
    back = TrainingState.load(state.save(tmp_path, SFTConfig(), None))
    fresh = torch.amp.GradScaler("cpu")
    fresh.load_state_dict(back.scaler)
    assert fresh.get_scale() == 2.0 ** 117


def test_qlora_export_merges_into_a_bf16_reload_of_the_base(tok, tmp_path):
    """Stands in for the NF4 model (CUDA only) with an fp32 LoRA model: the merge must not happen in the
    trained model (4-bit there), but in a bf16 copy of the base rebuilt from the config."""
    from safetensors.torch import load_file

    from curiosity_sft.config import SFTConfig
    from curiosity_sft.models import apply_lora, load_model
    from curiosity_sft.training.export import export_run

    cfg = SFTConfig(model_name="smollm2-135m-instruct", hidden_dim=64, num_layers=2, peft_enable=True, lora_r=4,
                    load_in_4bit=True, seed=3)
    trained = apply_lora(load_model(cfg.model_name, hidden_dim=64, num_layers=2, seed=3), 4, 32, 0.0, "all-linear")
    with torch.no_grad():
        for n, p in trained.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    layer = trained.base_model.model.model.layers[0].self_attn.q_proj
    delta = (layer.lora_B.default.weight @ layer.lora_A.default.weight) * layer.scaling["default"]
    base_w = layer.base_layer.weight.detach().clone()
    export_run(tmp_path, trained, tok, cfg, step=1)
    hf = json.loads((tmp_path / "hf_model" / "config.json").read_text())
    assert "quantization_config" not in hf and hf["dtype"] == "bfloat16"
    merged = load_file(str(tmp_path / "hf_model" / "model.safetensors"))["model.layers.0.self_attn.q_proj.weight"]
    assert merged.dtype == torch.bfloat16
    torch.testing.assert_close(merged.float(), (base_w + delta).detach().to(torch.bfloat16).float(), rtol=0, atol=1e-2)
    assert any("lora_B" in n for n in load_file(str(tmp_path / "adapter" / "adapter_model.safetensors")))


def test_oom_under_several_processes_stops_with_the_fix_instead_of_splitting_alone(tok, tiny_model, monkeypatch):
    from test_training_step import micro_batches

    def oom(model, b):
        raise torch.OutOfMemoryError("injected")

    monkeypatch.setattr(step_mod, "sum_token_loss", oom)
    par = Parallelism(World(None, 1, 2, torch.device("cpu")))  # rank 1 of 2 (accumulate never communicates)
    par.prepare(TokenLoss(tiny_model), [])
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    runner = StepRunner(tiny_model, torch.optim.SGD(params, lr=0.0), params, torch.device("cpu"), None, None, 1.0,
                        parallel=par)
    with pytest.raises(UserError, match="out of memory on process 1 of 2.*several processes cannot split") as e:
        runner.accumulate(micro_batches(tok))
    assert "the last checkpoint is intact" in str(e.value) and "gradient_accumulation_steps" in str(e.value)
    assert runner.split == 1  # before the fix this rank halved alone and the collectives no longer matched


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A10", 125e12), ("NVIDIA H100 80GB HBM3", 989e12),
    ("NVIDIA H100 PCIe", 756e12), ("NVIDIA GeForce RTX 3090", 71e12), ("NVIDIA GeForce RTX 3090 Ti", 80e12),
    ("NVIDIA L40", 181e12), ("NVIDIA L40S", 362e12), ("NVIDIA RTX A6000", 155e12), ("NVIDIA B200", None),
    ("NVIDIA A10G", None),
])
def test_gpu_peaks_match_whole_names_and_unknown_gpus_say_so(name, peak):
    from curiosity_sft.training.telemetry import gpu_peak_flops

    assert gpu_peak_flops(name) == peak


def test_mfu_divides_the_job_by_every_device():
    from curiosity_sft.training.telemetry import mfu

    # 8 processes, each at 40% of a 100 TFLOP/s device: the job's FLOPs are 8 x 40 TFLOP per second
    assert mfu(8 * 40e12, 1.0, 100e12, 8) == pytest.approx(0.4)
    assert mfu(1e12, 1.0, None, 1) is None  # an unknown GPU: no MFU rather than a false 0


def test_a_killed_saves_temporary_folder_is_removed(data, tmp_path):
    """A failed save removes its own folder (test_training_step's mid-write test); a SIGKILL during a save
    gives no chance to, so the next run into the folder removes what it left."""
    out = tmp_path / "run"
    train(tiny_config(*data, val_file=None, max_steps=2), out, show_progress=False)
    (out / ".checkpoint-7.tmp").mkdir()  # a save of step 7 that never finished
    (out / ".checkpoint-7.tmp" / "model.safetensors").write_text("half")
    train(tiny_config(*data, val_file=None, max_steps=3), out, resume_from="latest", show_progress=False)
    assert not list(out.glob(".checkpoint-*.tmp")) and find_checkpoint("latest", out).name == "checkpoint-3"


def test_rng_files_of_older_checkpoints_still_load(tmp_path):
    import numpy as np

    old = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    torch.save(old, tmp_path / "rng.pt")
    with pytest.raises(pickle.UnpicklingError):  # numpy objects: not loadable as weights-only data
        torch.load(tmp_path / "rng.pt", weights_only=True)
    rngs = ckpt_mod._load_rngs(tmp_path / "rng.pt")  # named numpy types only, no arbitrary code
    ckpt_mod.set_rng_state(rngs[0])
    assert np.random.get_state()[2] == old["numpy"][2]


def test_total_steps_count_every_epochs_own_packing_plan():
    from curiosity_sft.training.stream import ShuffledSampler, total_steps

    rng = random.Random(2)
    lengths = [rng.randint(10, 200) for _ in range(300)]
    sampler = ShuffledSampler(lengths, 4, packing=True, max_length=256, seed=1, group_by_length=False)
    per_epoch = [len(sampler.plan(e)) for e in range(4)]
    assert per_epoch == [34, 35, 35, 34]  # packing makes each epoch's step count its own
    assert total_steps(sampler, 3, None) == sum(per_epoch[:3])  # before: ceil(3 x epoch 0's count)
    assert total_steps(sampler, 3, None) != 3 * per_epoch[0]
    assert total_steps(sampler, 2.5, None) == sum(per_epoch[:2]) + -(-per_epoch[2] // 2)
    assert len(plan_epoch(lengths, list(range(300)), 4, True, 256)) > 0


def test_weight_decay_skips_norms_biases_and_embeddings(tmp_path, tok):
    from test_sft import qwen2_folder

    from curiosity_sft.models import load_model
    from curiosity_sft.training.optimizer import build_optimizer

    model = load_model(str(qwen2_folder(tmp_path, tok)), hidden_dim=64, num_layers=2)  # q/k/v biases, untied head
    opt = build_optimizer(model, 1e-3, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in opt.param_groups[0]["params"]}
    kept = {names[id(p)] for p in opt.param_groups[1]["params"]}
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert "model.embed_tokens.weight" in kept and "model.norm.weight" in kept
    assert "model.layers.0.self_attn.q_proj.bias" in kept and "model.layers.0.input_layernorm.weight" in kept
    assert "model.layers.0.self_attn.q_proj.weight" in decayed and "lm_head.weight" in decayed
    assert decayed | kept == set(names.values())


@pytest.mark.slow
def test_a_checkpoint_with_one_optimizer_group_resumes_into_the_decay_groups(data, tmp_path):
    """Checkpoints written before the decay groups held one group in the model's parameter order."""
    out = tmp_path / "run"
    ref = tmp_path / "ref"
    cfg = tiny_config(*data, val_file=None, max_steps=4, save_steps=2)
    train(cfg, ref, show_progress=False)
    shutil.copytree(ref, out)
    killed_after(out, 2)
    ck = out / "checkpoint-2"
    meta = json.loads((ck / "trainer_state.json").read_text())
    order = meta.pop("optimizer_order")
    (ck / "trainer_state.json").write_text(json.dumps(meta))
    osd = torch.load(ck / "optimizer.pt", weights_only=True)
    from curiosity_sft.models import load_model

    model_order = [n for n, p in load_model("smollm2-135m-instruct", hidden_dim=64, num_layers=2).named_parameters()]
    one = {"state": {model_order.index(n): osd["state"][i] for i, n in enumerate(order)},
           "param_groups": [{**osd["param_groups"][0], "params": list(range(len(order)))}]}
    torch.save(one, ck / "optimizer.pt")
    train(cfg, out, resume_from="latest", show_progress=False)
    a, b = losses(ref), losses(out)
    assert [b[s] for s in (3, 4)] == pytest.approx([a[s] for s in (3, 4)], rel=1e-6)


def test_a_short_step_is_padded_to_the_busiest_processs_forward_count(tok, tiny_model, monkeypatch):
    """Defect 1: micro-batches of 2, 2 and 1 rows over 2 processes give process 0 two and process 1 one;
    a sharded forward is a collective, so process 1 must run a second forward that trains nothing."""
    from test_training_step import micro_batches

    from curiosity_sft.training.stream import without_labels

    micro = micro_batches(tok)[:1]  # process 1's share: one micro-batch
    filler = without_labels(micro[0])
    seen = []
    real = step_mod.sum_token_loss
    monkeypatch.setattr(step_mod, "sum_token_loss", lambda m, b: (seen.append(b.n_trained), real(m, b))[1])
    params = [p for p in tiny_model.parameters() if p.requires_grad]
    runner = StepRunner(tiny_model, torch.optim.SGD(params, lr=0.0), params, torch.device("cpu"), None, None, 1.0)
    loss, _ = runner.accumulate(micro, 100, shares=[[4, 1], [4]], filler=filler)
    assert len(seen) == 2 and seen[1] == 0  # the pad trains nothing
    runner.split = 2  # after an OOM split: 4 rows -> 2 + 2 and 1 row -> 1, against 2 pieces here
    seen.clear()
    runner.accumulate(micro, 100, shares=[[4, 1], [4]], filler=filler)
    assert len(seen) == 3
