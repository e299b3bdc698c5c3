"""Template-correct assistant masks for three families: R1 distill, Qwen3-style and ChatML.

The fixtures (tests/template_fixtures.py) are SmolLM2's tokenizer with templates written to behave
as the real ones do. For each: a reply's trained text is its reasoning + answer + end of turn,
after the template's own generation prompt; every assistant turn of a 3-turn chat is trained; the
start-up round-trip check fires on a template that drops content; ``evaluate``'s prompt is the
one the trained tokens follow.
"""

from __future__ import annotations

import logging

import pytest

from curiosity_sft.chat_template import ChatTemplate, TemplateError, setup_chat_template
from curiosity_sft.data.schema import Example, example_from_dict
from curiosity_sft.errors import ConfigError, UserError
from curiosity_sft.evaluation.generate import prompt_text, stop_ids
from curiosity_sft.training.batching import IGNORE, encode_all, encode_file
from template_fixtures import FAMILIES, QWEN3, R1

QUESTION = "What is 2 + 3?"
REASONING = "I add two and three ... gives five."
ANSWER = "The answer is 5."
REPLY = f"<think>\n{REASONING}\n</think>\n\n{ANSWER}"
EOT = {"r1": "<｜end▁of▁sentence｜>", "qwen3": "<|im_end|>\n", "chatml": "<|im_end|>\n"}
GEN_PROMPT_END = {"r1": "<｜Assistant｜><think>\n", "qwen3": "<|im_start|>assistant\n", "chatml": "<|im_start|>assistant\n"}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tok):
    return request.param, FAMILIES[request.param](tok)


def chat_example(*turns: tuple[str, str], id: str = "x") -> Example:
    msgs = []
    for user, reply in turns:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
    return Example(id=id, source="gsm8k", messages=msgs)


def trained_texts(tok, example: Example, max_length: int = 4096) -> list[str]:
    res = encode_all([example], tok, max_length)
    assert not res.dropped, res.drops
    tok = tok.tok if isinstance(tok, ChatTemplate) else tok
    return [tok.decode([t for t, lab in zip(e.input_ids, e.labels, strict=True) if lab != IGNORE]) for e in res.kept]


def test_single_turn_reasoning_trains_reasoning_answer_and_end_of_turn(family):
    name, tok = family
    (trained,) = trained_texts(tok, chat_example((QUESTION, REPLY)))
    if name == "r1":  # `<think>\n` is the generation prompt's: the model never writes it
        assert trained == f"{REASONING}\n</think>\n\n{ANSWER}{EOT[name]}"
    else:
        assert trained == f"{REPLY}{EOT[name]}"


def test_r1_plain_reply_gets_an_empty_think_block_after_the_prefilled_prompt(tok):
    r1 = FAMILIES["r1"](tok)
    (trained,) = trained_texts(r1, chat_example((QUESTION, ANSWER)))
    assert trained == f"\n</think>\n\n{ANSWER}<｜end▁of▁sentence｜>"


@pytest.mark.parametrize("with_reasoning", [True, False])
def test_every_assistant_turn_of_a_3_turn_chat_is_trained(family, with_reasoning):
    name, tok = family
    replies = [f"<think>\nStep {k}.\n</think>\n\nAnswer {k}." if with_reasoning else f"Answer {k}." for k in range(3)]
    ex = chat_example(*[(f"Question {k}?", r) for k, r in enumerate(replies)])
    if name == "r1":  # after the prefilled `<think>\n`; a plain reply closes an empty block
        expected = [(f"Step {k}.\n" if with_reasoning else "\n") + f"</think>\n\nAnswer {k}." for k in range(3)]
    elif name == "qwen3":  # each turn as the template renders a last turn: always with its block
        expected = [f"<think>\n{f'Step {k}.' if with_reasoning else ''}\n</think>\n\nAnswer {k}." for k in range(3)]
    else:
        expected = replies
    expected = [e + EOT[name] for e in expected]
    assert trained_texts(tok, ex) == (["".join(expected)] if name == "chatml" else expected)


def test_turns_a_template_re_renders_get_their_own_sequence_after_the_inference_history(family):
    """R1 and Qwen3 drop earlier turns' reasoning: each turn is trained after the history as rendered
    at inference (one sequence per turn); ChatML keeps the chat as one sequence."""
    name, tok = family
    ex = chat_example(*[(f"Question {k}?", f"<think>\nStep {k}.\n</think>\n\nAnswer {k}.") for k in range(3)])
    res = encode_all([ex], tok, 4096)
    assert len(res.kept) == (1 if name == "chatml" else 3)
    chat = ChatTemplate(tok)
    for k, e in enumerate(res.kept if name != "chatml" else []):
        first = next(j for j, lab in enumerate(e.labels) if lab != IGNORE)
        assert tok.decode(e.input_ids[:first]) == chat.prompt(ex.messages[:2 * k + 1])


def test_generation_prompt_used_by_evaluate_equals_the_one_trained_tokens_follow(family):
    name, tok = family
    ex = chat_example((QUESTION, REPLY))
    (e,) = encode_all([ex], tok, 4096).kept
    first = next(j for j, lab in enumerate(e.labels) if lab != IGNORE)
    prompt = prompt_text(ex, tok)
    assert prompt.endswith(GEN_PROMPT_END[name]) and ANSWER not in prompt
    assert tok.decode(e.input_ids[:first]) == prompt
    assert e.input_ids[:first] == tok(prompt, add_special_tokens=False)["input_ids"]  # the ids evaluate feeds
    assert e.input_ids[-1] in stop_ids(tok) or name != "r1"


def test_stop_tokens_are_the_templates_end_of_turn(family):
    name, tok = family
    assert tok.convert_tokens_to_ids(EOT[name].strip()) in stop_ids(tok)


def test_behaviour_is_read_from_the_template_not_the_name(family):
    name, tok = family
    b = ChatTemplate(tok).behaviour
    assert b.prefill == ("<think>\n" if name == "r1" else "")
    assert b.reasoning == ("shielded" if name == "r1" else "kept")
    assert b.thinks is (name != "chatml")
    assert b.drops_history_reasoning is (name != "chatml")


DROPPING = {  # each family's template made to drop part of the reply
    "r1": R1.replace("'<｜Assistant｜>' + content +", "'<｜Assistant｜>' + content[:3] +"),
    "qwen3": QWEN3.replace("+ content.lstrip('\\n') }}", "+ content[:3] }}").replace(
        "{{- '<|im_start|>' + message.role + '\\n' + content }}", "{{- '<|im_start|>' + message.role + '\\n' + content[:3] }}"),
    "chatml": None,
}


def test_round_trip_check_fires_on_a_template_that_drops_content(family, tmp_path):
    name, tok = family
    source = DROPPING[name] or tok.chat_template.replace("message['content']", "message['content'][:3]")
    assert source != tok.chat_template
    path = tmp_path / f"{name}_broken.jinja"
    path.write_text(source)
    import copy

    broken = copy.deepcopy(tok)
    with pytest.raises(TemplateError) as e:
        setup_chat_template(broken, path)
    assert str(path) in str(e.value) and "round-trip" in str(e.value)


def test_template_that_loses_reasoning_with_no_variant_stops_training_reasoning(tok):
    """A template that keeps only the last paragraph: shielding the tags cannot save the reasoning."""
    import copy

    t = copy.deepcopy(tok)
    t.chat_template = tok.chat_template.replace("message['content']", "message['content'].split('\\n\\n')[-1]")
    chat = setup_chat_template(t)  # plain replies still train: no error at start-up
    assert chat.behaviour.reasoning == "dropped"
    assert trained_texts(chat, chat_example((QUESTION, ANSWER))) == [f"{ANSWER}<|im_end|>\n"]
    with pytest.raises(TemplateError, match="cuts the reasoning out"):
        encode_all([chat_example((QUESTION, REPLY))], chat, 4096)


def test_override_file_replaces_the_template_and_bad_files_are_one_line_errors(tok, tmp_path):
    import copy

    t = copy.deepcopy(tok)
    path = tmp_path / "r1.jinja"
    path.write_text(R1.replace("<｜User｜>", "<|im_start|>"))  # R1's behaviour, tokens SmolLM2 has
    chat = setup_chat_template(t, path)
    assert t.chat_template == path.read_text() and chat.behaviour.prefill == "<think>\n"
    with pytest.raises(ConfigError, match="not found"):
        setup_chat_template(copy.deepcopy(tok), tmp_path / "missing.jinja")
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}\n{{ m.content }")
    with pytest.raises(ConfigError) as e:
        setup_chat_template(copy.deepcopy(tok), bad)
    assert e.value.one_line().startswith(f"{bad}:2: chat_template is not valid Jinja")


def test_reasoning_content_field_is_trained_like_an_inline_block(family):
    name, tok = family
    rec = {"source": "x", "messages": [{"role": "user", "content": QUESTION},
                                       {"role": "assistant", "content": ANSWER, "reasoning_content": REASONING}]}
    inline = trained_texts(tok, chat_example((QUESTION, REPLY)))
    assert trained_texts(tok, example_from_dict(rec)) == inline


def test_r1_raw_output_without_the_opening_tag_is_read_as_reasoning(tok):
    r1 = FAMILIES["r1"](tok)
    (trained,) = trained_texts(r1, chat_example((QUESTION, f"{REASONING}\n</think>\n\n{ANSWER}")))
    assert trained == f"{REASONING}\n</think>\n\n{ANSWER}<｜end▁of▁sentence｜>"


def test_drop_reasons_are_the_true_ones(tok, tmp_path, caplog):
    import copy

    t = copy.deepcopy(tok)  # ChatML that ends no empty reply (nothing to train) and refuses a "forbidden" one
    t.chat_template = ("{% for m in messages %}{% if 'forbidden' in m['content'] %}{{ raise_exception('no') }}"
                       "{% endif %}{{'<|im_start|>' + m['role'] + '\\n' + m['content']}}"
                       "{% if m['content'] %}{{'<|im_end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}"
                       "{{ '<|im_start|>assistant\\n' }}{% endif %}")
    exs = [chat_example(("Hi", "Hello!"), id="ok"), chat_example(("Hi", "word " * 300), id="long"),
           chat_example(("Hi", ""), id="empty"), chat_example(("Hi", "forbidden"), id="refused"),
           Example(id="first", source="x", messages=[{"role": "assistant", "content": "I speak first."}])]
    res = encode_all(exs, t, 64)
    assert [e.example_id for e in res.kept] == ["ok"]
    assert res.dropped == {"too_long": 1, "nothing_to_train": 1, "template_mismatch": 2}
    assert {i: r for i, (r, _) in res.drops.items()} == {"long": "too_long", "empty": "nothing_to_train",
                                                         "refused": "template_mismatch", "first": "template_mismatch"}
    from curiosity_sft.data.schema import write_examples

    path = tmp_path / "train.jsonl"
    write_examples(path, exs)
    with caplog.at_level(logging.WARNING):
        encode_file(path, ChatTemplate(t), 64, "auto", "train")
    msg = caplog.text
    assert "dropped 4 of 5 examples" in msg and "1 longer than max_length=64" in msg
    assert "1 with nothing to train" in msg and "2 that the chat template cannot train (template mismatch)" in msg
    write_examples(path, exs[2:4])
    with pytest.raises(UserError, match="no train example can be trained: 1 with nothing to train"):
        encode_file(path, ChatTemplate(t), 64, "auto", "train")
