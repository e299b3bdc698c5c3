"""Evaluation that fits reasoning models: the template's generation prompt, a thinking budget, cut
thinking counted apart, DeepSeek's sampling with mean accuracy, GSM8K few-shot in lm-eval's format."""

from __future__ import annotations

import json

import pytest
import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.data.schema import Example, chat
from curiosity_sft.errors import UserError
from curiosity_sft.evaluation.evaluate import accuracy_table, evaluate
from curiosity_sft.evaluation.fewshot import assign_shots, default_pool, fewshot_messages, question_turn
from curiosity_sft.evaluation.generate import GenerationSettings, generate, prompt_text
from template_fixtures import FAMILIES, write_model_folder

QUESTIONS = ["What is 2 + 3?", "What is 4 + 4?", "A farmer has 3 cows and buys 2. How many now?"]


def gsm8k(i: int, q: str) -> Example:
    return Example(f"q{i}", "gsm8k", messages=chat(q, f"Add them.\n#### {i}"), answer=str(i), meta={"task": "gsm8k"})


@pytest.fixture(scope="module")
def r1(tok, tmp_path_factory):
    """The R1 fixture tokenizer and a tiny random model of its vocabulary."""
    from curiosity_sft.models import load_model, load_tokenizer

    folder = write_model_folder(FAMILIES["r1"](tok), tmp_path_factory.mktemp("m") / "r1")
    return load_model(str(folder), hidden_dim=64, num_layers=2, seed=0).eval(), load_tokenizer(str(folder))


def force(model: torch.nn.Module, token_id: int) -> None:
    """Make ``token_id`` the greedy choice after any prefix."""
    with torch.no_grad():
        model.lm_head.weight[token_id] = model.lm_head.weight.abs().max() * 50


def test_r1_generation_starts_inside_the_prefilled_think_block(r1):
    model, tok = r1
    force(model, tok.convert_tokens_to_ids("</think>"))
    settings = GenerationSettings(max_new_tokens=2, max_thinking_tokens=3)
    (g,), speed = generate(model, tok, [gsm8k(5, QUESTIONS[0])], batch_size=1, settings=settings)
    assert g.prompt.endswith("<｜Assistant｜><think>\n") and g.prompt == prompt_text(gsm8k(5, QUESTIONS[0]), tok)
    assert g.output.startswith("<think>\n</think>")  # the prefill is part of the reply, so </think> closes it
    assert g.new_tokens == 5 == speed["budget"] and not g.thinking_cut  # 2 answer + 3 thinking tokens


def test_thinking_budget_only_for_templates_that_think(tok, r1):
    s = GenerationSettings(max_new_tokens=7, max_thinking_tokens=100)
    from curiosity_sft.chat_template import ChatTemplate

    assert s.budget(ChatTemplate(r1[1])) == 107 and s.budget(ChatTemplate(tok)) == 7
    cfg = SFTConfig()
    assert GenerationSettings.from_config(cfg, "cpu").max_thinking_tokens == 256  # small on CPU
    assert GenerationSettings.from_config(cfg, "cuda").max_thinking_tokens == 32768  # DeepSeek's R1 budget
    assert GenerationSettings.from_config(SFTConfig(eval_max_thinking_tokens=9), "cuda").max_thinking_tokens == 9


def test_cut_thinking_is_counted_apart_in_results_and_report(r1, tmp_path):
    model, tok = r1
    force(model, tok.convert_tokens_to_ids("5"))  # thinks "5555..." forever: never closes
    exs = [gsm8k(5, q) for q in QUESTIONS]
    data = tmp_path / "val.jsonl"
    from curiosity_sft.data.schema import write_examples

    write_examples(data, exs)
    cfg = SFTConfig(eval_max_thinking_tokens=4)
    res = evaluate("tiny-r1", data, tmp_path / "eval", max_new_tokens=2, batch_size=3, tasks=("accuracy",),
                   show_progress=False, model_bundle=(model, tok, "tiny-r1"), config=cfg)
    acc = res["accuracy"]["gsm8k"]
    assert acc["accuracy"] == 0.0 and acc["thinking_cut"] == {"n": 3, "at_tokens": 6}  # 2 + 4 tokens
    samples = [json.loads(x) for x in (tmp_path / "eval" / "samples.jsonl").read_text().splitlines()]
    assert all(s["thinking_cut"] and s["extracted"] is None and s["output"].startswith("<think>\n5") for s in samples)
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| no answer gsm8k: thinking cut at 6 tokens | 3 |" in report
    assert "**no answer: thinking cut at 6 tokens**" in report
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["accuracy"]["gsm8k"]["thinking_cut"]["n"] == 3


def test_deepseek_sampling_draws_several_samples_and_averages_accuracy(tiny_model, tok):
    exs = [gsm8k(i, q) for i, q in enumerate(QUESTIONS)]
    settings = GenerationSettings(max_new_tokens=4, sampling="deepseek", num_samples=3, seed=1)
    gens, speed = generate(tiny_model, tok, exs, batch_size=2, settings=settings)
    assert [(g.example.id, g.sample) for g in gens] == [(f"q{i}", k) for i in range(3) for k in range(3)]
    assert speed["temperature"] == 0.6 and speed["top_p"] == 0.95 and speed["num_samples"] == 3
    again, _ = generate(tiny_model, tok, exs, batch_size=2, settings=settings)
    assert [g.output for g in gens] == [g.output for g in again]  # seeded
    assert len({g.output for g in gens}) > 1  # sampled, not greedy
    greedy, _ = generate(tiny_model, tok, exs, batch_size=2, settings=GenerationSettings(max_new_tokens=4))
    assert len(greedy) == 3
    rows = [{"source": "gsm8k", "correct": c} for c in (True, True, False, False, False, True)]  # 2 prompts x 3
    assert accuracy_table(rows)["gsm8k"]["accuracy"] == pytest.approx(0.5)  # the mean over samples


POOL = [(f"Pool question {i}?", f"Step <<1+{i}={1 + i}>>.\n#### {1 + i}") for i in range(40)]


def test_gsm8k_few_shot_prompt_in_lm_eval_format(tok):
    exs = [gsm8k(i, q) for i, q in enumerate(QUESTIONS)]
    shots = assign_shots(exs, POOL, 5)
    assert set(shots) == {"q0", "q1", "q2"} and all(len(v) == 5 for v in shots.values())
    msgs = fewshot_messages(exs[0], shots["q0"])
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 5 + ["user"]
    assert msgs[0]["content"] == question_turn(shots["q0"][0][0]) == f"Question: {shots['q0'][0][0]}\nAnswer:"
    assert msgs[1]["content"] == shots["q0"][0][1]  # the full solution, calculator notes and #### included
    assert msgs[-1]["content"] == "Question: What is 2 + 3?\nAnswer:"
    p = prompt_text(exs[0], tok, shots["q0"])
    assert p.endswith("<|im_start|>user\nQuestion: What is 2 + 3?\nAnswer:<|im_end|>\n<|im_start|>assistant\n")
    assert p.count("Question:") == 6
    # Shots depend on the file order, not on the subset evaluated: as lm-eval draws them.
    assert assign_shots(exs, POOL, 5)["q2"] == shots["q2"]
    assert assign_shots([Example("b", "books", text="x"), *exs], POOL, 5) == shots


def test_few_shot_draws_what_lm_eval_draws():
    samplers = pytest.importorskip("lm_eval.api.samplers")
    exs = [gsm8k(i, f"Q{i}?") for i in range(6)]
    ours = assign_shots(exs, POOL, 5)
    theirs = samplers.ContextSampler(list(POOL), rnd=1234)  # lm-eval's default sampler and fewshot seed
    assert [ours[e.id] for e in exs] == [list(theirs.sample(5)) for _ in exs]


def test_few_shot_generation_stops_at_the_next_question(tiny_model, tok, monkeypatch):
    """lm-eval's `until: Question:`. A static head can only repeat one token, so the stop string is
    the token twice here; the mechanism (HF stop_strings, then the text cut there) is the real one."""
    import curiosity_sft.evaluation.generate as gen
    from curiosity_sft.evaluation.fewshot import STOP_STRINGS

    assert STOP_STRINGS == ("Question:",)
    monkeypatch.setattr(gen, "STOP_STRINGS", ("QuestionQuestion",))
    force(tiny_model, tok("Question", add_special_tokens=False)["input_ids"][0])
    exs = [gsm8k(0, QUESTIONS[0])]
    (g,), _ = generate(tiny_model, tok, exs, batch_size=1, settings=GenerationSettings(max_new_tokens=8),
                       shots=assign_shots(exs, POOL, 2))
    assert g.output == "" and g.new_tokens == 2  # stopped after the stop string, which is cut off
    (plain,), _ = generate(tiny_model, tok, exs, batch_size=1, settings=GenerationSettings(max_new_tokens=8))
    assert plain.new_tokens == 8  # zero-shot: no stop string


def test_few_shot_pool_is_found_beside_the_data_or_asked_for(tmp_path):
    (tmp_path / "train.jsonl").write_text(json.dumps({"question": "q", "answer": "a\n#### 1"}) + "\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"question": "q2", "answer": "b\n#### 2"}) + "\n")
    assert default_pool(tmp_path / "test.jsonl") == tmp_path / "train.jsonl"
    with pytest.raises(UserError, match="--fewshot-file"):
        default_pool(tmp_path / "train.jsonl")  # the file itself is no pool for itself
    with pytest.raises(UserError, match="more than the 40"):
        assign_shots([gsm8k(0, "q")], POOL, 41)


def test_cli_num_fewshot_and_sampling_flags(tiny_model, tok, tmp_path, monkeypatch, capsys):
    import curiosity_sft.evaluation.evaluate as ev
    from curiosity_sft.cli import main

    monkeypatch.setattr(ev, "load_for_inference", lambda spec: (tiny_model.eval(), tok, "tiny"))
    data = tmp_path / "gsm8k" / "test.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps({"question": q, "answer": f"x\n#### {i}"}) + "\n" for i, q in enumerate(QUESTIONS)))
    (data.parent / "train.jsonl").write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in POOL))
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", "tiny", "--data", str(data), "--tasks", "accuracy", "--max-new-tokens", "3",
                 "--num-fewshot", "5", "--sampling", "deepseek", "--num-samples", "2", "--output", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["generation"]["num_fewshot"] == 5 and res["generation"]["num_samples"] == 2
    assert res["accuracy"]["gsm8k"]["n"] == 6  # 3 problems x 2 samples
    sample = json.loads((out / "samples.jsonl").read_text().splitlines()[0])
    assert sample["prompt"].count("Question:") == 6


def test_bleu_compares_answers_with_answers_when_references_think():
    from curiosity_sft.evaluation.evaluate import _bleu

    rows = [{"source": "gsm8k", "output": "<think>\nmine\n</think>\n\nThe total is 72 clips.\n#### 72",
             "reference_response": "<think>\nNatalia sold 48/2 = 24 clips.\n</think>\n\nThe total is 72 clips.\n#### 72"}]
    assert _bleu(rows)["overall"]["bleu"] == pytest.approx(100.0)
