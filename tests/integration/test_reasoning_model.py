"""A tiny random model with the R1-distill fixture: trained a few steps on reasoning data, then evaluated.

End to end through the real commands' functions: the training log says what the template does,
the reasoning is trained (not cut by the template), the exported tokenizer carries the template,
``evaluate`` prompts with the ``<think>\\n`` the trained tokens follow, and its perplexity is the
training run's own eval loss (the same trained tokens).
"""

from __future__ import annotations

import json
import logging
import math

import pytest

from curiosity_sft.config import SFTConfig
from curiosity_sft.data.schema import read_examples, write_examples
from curiosity_sft.evaluation.evaluate import evaluate
from curiosity_sft.training.batching import IGNORE, encode_all
from curiosity_sft.training.export import load_for_inference
from curiosity_sft.training.loop import train
from template_fixtures import FAMILIES, write_model_folder
from tiny_run import tiny_config, write_data


@pytest.mark.slow
def test_r1_fixture_trains_reasoning_and_evaluates(tok, tmp_path, caplog):
    folder = write_model_folder(FAMILIES["r1"](tok), tmp_path / "r1-distill-fixture")
    train_file, val_file = write_data(tmp_path / "data", n_train=24, n_val=6)
    val = read_examples(val_file)
    for ex in val:  # verifiable answers, so accuracy is scored
        ex.answer = ex.reference.split("#### ")[-1] if ex.messages else None
    write_examples(val_file, val)
    cfg = tiny_config(train_file, val_file, model_name=str(folder), max_steps=4, eval_steps=4, save_steps=4)
    with caplog.at_level(logging.INFO):
        r = train(cfg, tmp_path / "run", show_progress=False)
    assert r.steps == 4 and math.isfinite(r.final_loss) and r.final_eval_loss is not None
    assert "generation prompt prefills '<think>\\n'" in caplog.text
    assert "reasoning_format auto -> think" in caplog.text

    model, run_tok, _ = load_for_inference(str(tmp_path / "run" / "latest.pt"))
    assert run_tok.chat_template == FAMILIES["r1"](tok).chat_template  # exported with the run
    val = read_examples(val_file)
    (e, *_) = encode_all(val, run_tok, cfg.max_length).kept
    trained = run_tok.decode([t for t, lab in zip(e.input_ids, e.labels, strict=True) if lab != IGNORE])
    assert trained.startswith("He has") and "\n</think>\n\n#### " in trained  # reasoning + final answer
    assert trained.endswith("<｜end▁of▁sentence｜>")

    res = evaluate(str(tmp_path / "run" / "latest.pt"), val_file, tmp_path / "eval", max_new_tokens=3,
                   batch_size=4, max_length=cfg.max_length, show_progress=False,
                   model_bundle=(model, run_tok, "tiny-r1"), tasks=("perplexity", "accuracy"),
                   config=SFTConfig(eval_max_thinking_tokens=6))
    assert res["perplexity"]["overall"]["loss"] == pytest.approx(r.final_eval_loss, rel=1e-4)
    samples = [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["prompt"].endswith("<｜Assistant｜><think>\n") for s in samples)
    assert all(s["output"].startswith("<think>\n") for s in samples)
    acc = res["accuracy"]["gsm8k"]
    cut = acc.get("thinking_cut", {"n": 0})["n"]
    assert cut == sum(s["thinking_cut"] for s in samples) and acc["n"] == len(samples)
    assert res["generation"]["budget"] == 3 + 6  # the answer's budget plus the thinking budget
