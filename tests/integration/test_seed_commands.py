"""The seed's four commands, exactly as users type them, with the real SmolLM2 on ../shared/data/raw."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT


def run(*args, cwd):
    p = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.mark.slow
def test_seed_commands_on_shared_data(shared_raw, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw").symlink_to(shared_raw)
    scripts = ROOT / "scripts"
    run(str(scripts / "prepare_data.py"), "--input", "data/raw/", "--output", "data/sft_examples/", cwd=tmp_path)
    manifest = json.loads((tmp_path / "data/sft_examples/manifest.json").read_text())
    assert manifest["counts"]["test"]["gsm8k"] == 1319
    # val.jsonl at the path the seed's evaluate command uses
    (tmp_path / "data" / "processed").mkdir()
    val = [ln for ln in (tmp_path / "data/sft_examples/val.jsonl").read_text().splitlines() if '"gsm8k' in ln][:8]
    (tmp_path / "data/processed/val.jsonl").write_text("\n".join(val) + "\n")

    common = ["--config", str(ROOT / "configs/sft_config.yaml"), "--output", "models/sft_finetuned/",
              "--set", "model_name=smollm2-135m-instruct", "--set", "max_steps=2", "--set", "save_steps=1",
              "--set", "batch_size=1", "--set", "gradient_accumulation_steps=1", "--set", "max_length=256",
              "--set", "eval_steps=100", "--set", "val_file=data/processed/val.jsonl", "--set", "fp16=false"]
    run(str(scripts / "train_sft.py"), *common, cwd=tmp_path)
    run(str(scripts / "train_sft.py"), *common, "--set", "max_steps=3", "--resume_from_checkpoint",
        "models/sft_finetuned/checkpoint-2", cwd=tmp_path)
    p = run(str(scripts / "evaluate_sft.py"), "--model", "models/sft_finetuned/latest.pt", "--data",
            "data/processed/val.jsonl", "--max-new-tokens", "16", "--output", "eval/",
            "--tasks", "perplexity,accuracy", cwd=tmp_path)  # BLEU's reference-sized budgets: test_evaluate.py
    res = json.loads((tmp_path / "eval/results.json").read_text())
    assert res["examples"] == 8 and "step 3" in res["model"]
    assert '"perplexity"' in p.stdout
