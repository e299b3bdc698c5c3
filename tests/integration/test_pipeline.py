"""prepare -> train -> evaluate -> resume, end to end through the CLI, on a tiny model on CPU."""

from __future__ import annotations

import json

import pytest
import torch

from curiosity_sft.cli import main

TINY_SET = ["model_name=smollm2-135m-instruct", "hidden_dim=64", "num_layers=2", "batch_size=2",
            "gradient_accumulation_steps=2", "max_length=256", "learning_rate=1e-3", "logging_steps=1",
            "save_steps=3", "eval_steps=3", "save_total_limit=2", "eval_batch_size=8", "peft_enable=false",
            "precision=fp32"]  # exact resume is asserted in fp32 on any CPU (tiny_run.py)


def run_train(prepared, out, *extra, resume=None):
    args = ["train", "--output", str(out), "--set", f"train_file={prepared / 'train.jsonl'}",
            "--set", f"val_file={prepared / 'val.jsonl'}"]
    for s in [*TINY_SET, *extra]:
        args += ["--set", s]
    if resume:
        args += ["--resume_from_checkpoint", resume]
    return main(args)


def losses(out):
    return {r["step"]: r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "loss" in r}


def test_train_outputs_and_exact_resume(prepared, tmp_path):
    full = tmp_path / "full"
    assert run_train(prepared, full, "max_steps=6") == 0
    for name in ("checkpoint-3", "checkpoint-6", "latest.pt", "hf_model/model.safetensors", "tokenizer",
                 "runs", "metrics.jsonl", "manifest.json", "config.yaml"):
        assert (full / name).exists(), name
    payload = torch.load(full / "latest.pt", weights_only=True)
    assert payload["method"] == "full" and payload["step"] == 6
    recs = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    assert {"step", "loss", "learning_rate", "grad_norm", "tokens_per_second"} <= set(recs[0])
    assert any("eval_loss" in r for r in recs)

    # Stop after 3 steps, then resume from the checkpoint to 6: identical losses.
    part = tmp_path / "part"
    assert run_train(prepared, part, "max_steps=6", "save_steps=3") == 0
    # simulate a run killed after checkpoint-3: remove everything written after it
    import shutil
    shutil.rmtree(part / "checkpoint-6")
    (part / "manifest.json").unlink()
    assert run_train(prepared, part, "max_steps=6", resume=str(part / "checkpoint-3")) == 0
    a, b = losses(full), losses(part)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    for s in a:
        assert b[s] == pytest.approx(a[s], rel=1e-6, abs=1e-7), s


def test_finished_run_is_not_overwritten_and_lora_evaluates(prepared, tmp_path, capsys):
    out = tmp_path / "lora"
    assert run_train(prepared, out, "max_steps=2", "peft_enable=true", "lora_r=4") == 0
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert run_train(prepared, out, "max_steps=2", "peft_enable=true") == 2
    assert "finished run" in capsys.readouterr().err
    res_dir = tmp_path / "eval"
    assert main(["evaluate", "--model", str(out / "latest.pt"), "--data", str(prepared / "val.jsonl"),
                 "--output", str(res_dir), "--max-new-tokens", "8", "--limit", "6"]) == 0
    res = json.loads((res_dir / "results.json").read_text())
    assert res["examples"] == 6 and res["perplexity"]["overall"]["perplexity"] > 1
    assert "accuracy" in res and (res_dir / "samples.jsonl").is_file()

    # inference folds the adapters into the weights (faster generation) without changing the outputs
    from curiosity_sft.training.export import _config_from_payload, build_from_state, load_for_inference

    merged, tok, _ = load_for_inference(str(out / "latest.pt"))
    assert not any("lora" in n for n, _ in merged.named_parameters())
    payload = torch.load(out / "latest.pt", weights_only=True)
    unmerged = build_from_state(_config_from_payload(payload, out), payload["state_dict"], out).eval()
    assert any(float(t.abs().max()) > 0 for n, t in payload["state_dict"].items() if "lora_B" in n)  # trained
    ids = torch.tensor([tok("Tom has 3 apples and buys 4 more.")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, unmerged(ids).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("argv,fragment", [
    (["train", "--output", "{tmp}/o", "--set", "learnign_rate=1"], "unknown key `learnign_rate`"),
    (["train", "--output", "{tmp}/o", "--set", "train_file={tmp}/none.jsonl",
      "--set", "model_name=smollm2-135m-instruct"], "train file not found"),
    (["prepare", "--input", "{tmp}/missing", "--output", "{tmp}/p"], "input folder not found"),
    (["prepare", "--input", "{tmp}/empty", "--output", "{tmp}/p"], "no data files found"),
    (["train", "--config", "{tmp}/typo.yaml", "--output", "{tmp}/o"], "typo.yaml:2: unknown key `epoch`"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, capsys, argv, fragment):
    (tmp_path / "empty").mkdir()
    (tmp_path / "typo.yaml").write_text("batch_size: 2\nepoch: 3\n")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "p").exists()
