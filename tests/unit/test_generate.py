"""Generation and perplexity on a tiny 2-layer SmolLM2-architecture model with the real tokenizer."""

from __future__ import annotations

import math

import pytest
import torch

from curiosity_sft.data.schema import Example, chat
from curiosity_sft.evaluation.generate import generate, prompt_text, stop_ids
from curiosity_sft.evaluation.perplexity import perplexity
from curiosity_sft.training.batching import encode_all

QUESTIONS = ["What is 2 + 3?", "A farmer has 12 cows and buys 30 more. How many cows does he have now?",
             "Name a colour.", "If a train travels 60 km in 1 hour, how far does it go in 2.5 hours? Explain."]


def examples() -> list[Example]:
    out = [Example(f"q{i}", "gsm8k" if i % 2 else "logic", messages=chat(q, f"The answer is {i}.\n#### {i}"),
                   answer=str(i)) for i, q in enumerate(QUESTIONS)]
    return out + [Example("t0", "books", text="Once upon a time there was a small dog who lived by the sea and barked.")]


def test_batched_generation_matches_one_at_a_time(tiny_model, tok):
    """Left padding must not change greedy outputs: batch of 4 == four batches of 1, in input order."""
    exs = examples()[:4]
    batched, speed = generate(tiny_model, tok, exs, max_new_tokens=12, batch_size=4)
    single, _ = generate(tiny_model, tok, exs, max_new_tokens=12, batch_size=1)
    assert [g.example.id for g in batched] == ["q0", "q1", "q2", "q3"]
    assert [g.output for g in batched] == [g.output for g in single]
    assert all(0 <= g.new_tokens <= 12 for g in batched)
    assert speed["new_tokens"] == sum(g.new_tokens for g in batched) and speed["tokens_per_second"] > 0
    assert speed["backend"] == "transformers"


def test_generation_stops_at_end_of_turn(tiny_model, tok):
    """Force the end-of-turn token to be the greedy choice: generation stops with nothing after it."""
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end in stop_ids(tok)
    with torch.no_grad():
        tiny_model.lm_head.weight[im_end] = tiny_model.lm_head.weight.abs().max() * 50  # dominant logit
    (g,), _ = generate(tiny_model, tok, examples()[:1], max_new_tokens=20, batch_size=1)
    assert g.new_tokens == 0 and g.output == ""


def test_prompts_use_the_chat_template(tok):
    ex = examples()[0]
    p = prompt_text(ex, tok)
    assert p.endswith("<|im_start|>assistant\n") and "The answer is" not in p
    assert prompt_text(examples()[-1], tok) == "Once upon a time there was a small"  # the first half of the words


def test_perplexity_is_token_weighted_over_trained_tokens(tiny_model, tok):
    exs = examples()
    res = perplexity(tiny_model, tok, exs, max_length=128, batch_size=2)
    assert set(res) == {"gsm8k", "logic", "books", "overall"}
    # By hand: sum of per-token NLL over the labelled tokens of each example / number of such tokens.
    enc = encode_all(exs, tok, 128).kept
    total, n = 0.0, 0
    for e in enc:
        ids = torch.tensor([e.input_ids])
        with torch.no_grad():
            logits = tiny_model(input_ids=ids).logits[0, :-1].float()
        labels = torch.tensor(e.labels[1:])
        keep = labels != -100
        total += float(torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum"))
        n += int(keep.sum())
    assert res["overall"]["tokens"] == n
    assert res["overall"]["perplexity"] == pytest.approx(math.exp(total / n), rel=1e-4)
    # Only the answer is trained for chat examples: far fewer tokens than the whole conversation.
    assert res["gsm8k"]["tokens"] < sum(len(e.input_ids) for e in enc if e.source == "gsm8k") / 2
    # Batching does not change the result.
    one = perplexity(tiny_model, tok, exs, max_length=128, batch_size=1)
    assert one["overall"]["loss"] == pytest.approx(res["overall"]["loss"], rel=1e-5)


def test_perplexity_reference_value(tok):
    """A golden value: seed-0 tiny model on the examples above (recorded from this implementation)."""
    from curiosity_sft.models import load_model

    model = load_model("smollm2-135m-instruct", hidden_dim=64, num_layers=2, seed=0)
    res = perplexity(model, tok, examples(), max_length=128, batch_size=4)
    assert res["overall"]["loss"] == pytest.approx(GOLDEN_LOSS, rel=1e-4)


GOLDEN_LOSS = 10.782705  # ~ln(49152) = 10.80: an untrained model is near-uniform over the vocabulary
