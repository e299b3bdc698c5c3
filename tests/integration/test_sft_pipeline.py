"""The seed's pipeline end to end through the CLI on a tiny model: prepare -> train (stopped by
SIGTERM mid-run) -> evaluate the checkpoint -> resume -> evaluate the final model against it; the
resumed run equals an uninterrupted one on every step."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from curiosity_sft.cli import main
from curiosity_sft.training.step import StepRunner
from tiny_run import signal_on_call

TINY = ["model_name=smollm2-135m-instruct", "hidden_dim=64", "num_layers=2", "batch_size=2",
        "gradient_accumulation_steps=2", "max_length=256", "learning_rate=1e-3", "logging_steps=1", "save_steps=4",
        "eval_steps=3", "eval_batch_size=8", "peft_enable=true", "lora_r=4", "lora_dropout=0.1", "max_steps=6"]


def train_args(data, out, *extra):
    args = ["train", "--output", str(out), "--set", f"train_file={data / 'train.jsonl'}",
            "--set", f"val_file={data / 'val.jsonl'}"]
    for s in TINY:
        args += ["--set", s]
    return [*args, *extra]


def history(out):
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r.get("loss"), r.get("eval_loss")) for r in rows if "loss" in r or "eval_loss" in r]


@pytest.mark.slow
def test_prepare_train_stop_evaluate_resume_evaluate(demo_raw, tmp_path, monkeypatch, capsys):
    data = tmp_path / "sft_examples"
    assert main(["prepare", "--input", str(demo_raw), "--output", str(data), "--val-ratio", "0.1",
                 "--max-length", "256"]) == 0
    assert (data / "train.jsonl").is_file() and (data / "val.jsonl").is_file()

    run = tmp_path / "models" / "sft_finetuned"
    with monkeypatch.context() as m:
        signal_on_call(m, StepRunner, "run", 3, signal.SIGTERM)  # a cluster's SIGTERM during step 3
        assert main(train_args(data, run)) == 0
    assert f"stopped by SIGTERM after step 3: saved {run / 'checkpoint-3'}" in capsys.readouterr().err
    assert json.loads((run / "manifest.json").read_text())["status"] == "running"

    mid = tmp_path / "eval_step3"
    assert main(["evaluate", "--model", str(run / "checkpoint-3"), "--data", str(data / "val.jsonl"),
                 "--output", str(mid), "--limit", "4", "--max-new-tokens", "8"]) == 0
    assert json.loads((mid / "results.json").read_text())["perplexity"]["overall"]["perplexity"] > 1

    assert main(train_args(data, run, "--resume_from_checkpoint", "latest")) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["steps"] == 6
    assert torch.load(run / "latest.pt", weights_only=True)["step"] == 6

    final = tmp_path / "eval_final"
    assert main(["evaluate", "--model", str(run / "latest.pt"), "--data", str(data / "val.jsonl"), "--output",
                 str(final), "--limit", "4", "--max-new-tokens", "8", "--compare", str(mid / "results.json")]) == 0
    assert (final / "report.md").is_file()

    ref = tmp_path / "ref"
    assert main(train_args(data, ref)) == 0
    a, b = history(ref), history(run)
    assert [s for s, _, _ in a] == [s for s, _, _ in b]
    for (s, la, ea), (_, lb, eb) in zip(a, b, strict=True):  # bit-identical on CPU, dropout included
        assert [x for x in (lb, eb) if x is not None] == pytest.approx([x for x in (la, ea) if x is not None],
                                                                       rel=1e-7), s
