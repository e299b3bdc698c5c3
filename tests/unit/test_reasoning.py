"""reasoning_format: plain / think / auto, in the training config (encode) and the data config (prepare)."""

from __future__ import annotations

import json

import pytest

from curiosity_sft.config import SFTConfig
from curiosity_sft.data.data_config import DataConfig
from curiosity_sft.data.reasoning import format_example, split_reasoning, think_text
from curiosity_sft.data.schema import Example, chat, read_examples
from curiosity_sft.errors import ConfigError
from curiosity_sft.training.batching import IGNORE, encode_all
from template_fixtures import FAMILIES, write_model_folder

GSM8K_REPLY = "Natalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n#### 72"
MATH_REPLY = "We have $\\frac{1}{2} + \\frac{1}{4} = \\frac{3}{4}$, so the sum is $\\boxed{\\frac{3}{4}}$."


def gsm8k(**meta) -> Example:
    return Example("g", "gsm8k", messages=chat("How many clips?", GSM8K_REPLY), answer="72", meta=meta)


def math() -> Example:
    return Example("m", "math", messages=chat("Add them.", MATH_REPLY), answer="\\frac{3}{4}", meta={"level": "Level 1"})


def logic() -> Example:
    return Example("l", "logic", messages=chat("Who is a knight?", "Ava is a knight."), answer="Ava is a knight.",
                   meta={"task": "knights_knaves"})


def reply(ex: Example) -> str:
    assert ex.messages is not None
    return ex.messages[-1]["content"]


def test_think_renders_worked_steps_then_a_short_final_answer():
    g, how = format_example(gsm8k(), "think")
    assert how == "think" and reply(g) == (
        "<think>\nNatalia sold 48/2 = 24 clips in May.\nAltogether she sold 48+24 = 72 clips.\n</think>\n\n#### 72")
    m, how = format_example(math(), "think")
    assert how == "think" and reply(m) == f"<think>\n{MATH_REPLY}\n</think>\n\n$\\boxed{{\\frac{{3}}{{4}}}}$"
    lg, how = format_example(logic(), "think")  # the records carry no worked steps: an empty block, counted
    assert how == "think_no_steps" and reply(lg) == "<think>\n\n</think>\n\nAva is a knight."


def test_plain_keeps_the_prepared_solution_and_text_is_untouched():
    assert reply(format_example(gsm8k(), "plain")[0]) == GSM8K_REPLY
    book = Example("b", "books", text="Once upon a time.")
    assert format_example(book, "think") == (book, "text")
    story = Example("s", "books", messages=chat("Continue the story.", "And then..."), meta={"task": "book_continuation"})
    assert format_example(story, "think")[1] == "plain"


def test_the_task_key_decides_not_the_source_label():
    ex = Example("x", "my_label", messages=chat("How many clips?", GSM8K_REPLY), meta={"task": "gsm8k"})
    assert format_example(ex, "think")[1] == "think"
    assert format_example(Example("y", "my_label", messages=chat("q", GSM8K_REPLY)), "think")[1] == "plain"
    assert format_example(gsm8k(), "think")[1] == "think"  # data prepared before meta.task: the source label


def test_data_that_carries_reasoning_is_kept_as_it_is_in_every_format():
    inline = Example("i", "gsm8k", messages=chat("q", "<think>\nmy own steps\n</think>\n\n#### 3"), answer="3")
    field = Example("f", "gsm8k", messages=[{"role": "user", "content": "q"},
                                           {"role": "assistant", "content": "#### 3", "reasoning_content": "my own steps"}])
    for fmt in ("plain", "think"):
        for ex in (inline, field):
            out, how = format_example(ex, fmt)
            assert how == "kept" and reply(out) == "<think>\nmy own steps\n</think>\n\n#### 3"
            assert "reasoning_content" not in out.messages[-1]
    assert split_reasoning({"content": "steps</think>\n\nanswer"}) == ("steps", "answer")  # R1's raw output
    assert split_reasoning({"content": "no reasoning here"}) == (None, "no reasoning here")
    assert think_text(" a ", "\n b") == "<think>\na\n</think>\n\nb"


@pytest.mark.parametrize("family,expected", [("r1", "think"), ("qwen3", "think"), ("chatml", "plain")])
def test_auto_picks_think_when_the_template_thinks(tok, family, expected):
    t = FAMILIES[family](tok)
    res = encode_all([gsm8k()], t, 4096)  # the training config's default, reasoning_format: auto
    assert res.reasoning_format == expected and res.formats == {expected: 1}
    (e,) = res.kept
    trained = t.decode([i for i, lab in zip(e.input_ids, e.labels, strict=True) if lab != IGNORE])
    assert ("</think>\n\n#### 72" in trained) is (expected == "think")
    assert "Altogether she sold 48+24 = 72 clips." in trained  # the reasoning is trained either way


def test_think_is_trained_on_a_chatml_model_when_asked(tok):
    (e,) = encode_all([gsm8k()], tok, 4096, "think").kept
    trained = tok.decode([i for i, lab in zip(e.input_ids, e.labels, strict=True) if lab != IGNORE])
    assert trained.startswith("<think>\nNatalia") and trained.endswith("</think>\n\n#### 72<|im_end|>\n")


def test_config_keys_are_validated():
    assert SFTConfig().reasoning_format == "auto" and DataConfig().reasoning_format == "auto"
    with pytest.raises(ValueError):
        SFTConfig(reasoning_format="cot")
    from curiosity_sft.config import load_config

    with pytest.raises(ConfigError, match="reasoning_format"):
        load_config(None, ["reasoning_format=cot"])


def test_prepare_writes_the_reasoning_format_of_the_data_config(demo_raw, tok, tmp_path):
    from curiosity_sft.data.prepare import prepare

    folder = write_model_folder(FAMILIES["r1"](tok), tmp_path / "r1")
    out = tmp_path / "prepared"
    r = prepare(demo_raw, out, val_ratio=0.1, seed=0, show_progress=False,
                data_config=DataConfig(model=str(folder), decontaminate_test_splits=False))  # auto -> think
    assert r.manifest["reasoning_format"]["asked"] == "auto" and r.manifest["reasoning_format"]["used"] == "think"
    train = read_examples(out / "train.jsonl")
    g = next(e for e in train if e.source == "gsm8k")
    assert reply(g).startswith("<think>\n") and "</think>\n\n#### " in reply(g)
    test = [json.loads(x) for x in (out / "test.jsonl").read_text().splitlines()]
    assert not any("<think>" in m["content"] for t in test if "messages" in t for m in t["messages"])
    plain = prepare(demo_raw, tmp_path / "plain", val_ratio=0.1, seed=0, show_progress=False,
                    data_config=DataConfig(model=None, reasoning_format="auto"))
    assert plain.manifest["reasoning_format"]["used"] == "plain"


def test_prepare_counts_lengths_on_the_text_training_renders(tok):
    """The R1 template alone cuts the reasoning: counting its render would let long replies through."""
    from curiosity_sft.data.lengths import LengthCounter

    r1 = FAMILIES["r1"](tok)
    ex, _ = format_example(gsm8k(), "think")
    (e,) = encode_all([ex], r1, 4096).kept
    assert LengthCounter(r1).examples([ex]) == [len(e.input_ids)]
    assert len(r1(r1.apply_chat_template(ex.messages, tokenize=False))["input_ids"]) < len(e.input_ids) - 20
