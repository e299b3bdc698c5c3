"""Model difficulty is the training loss per example (batched = one at a time), cached, and combinable with rules."""

from __future__ import annotations

import json

import pytest
import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.curriculum import CurriculumData, curriculum_data, encode_kept
from curiosity_sft.curriculum import difficulty as mod
from curiosity_sft.curriculum.data import combine_difficulty, rank_within_source
from curiosity_sft.data.schema import Example, chat
from curiosity_sft.models import load_model
from curiosity_sft.training.batching import collate, encode_all
from curiosity_sft.training.loss import sum_token_loss


def examples() -> list[Example]:
    out = [Example(id=f"c{i}", source="gsm8k", difficulty=i / 6, messages=chat(f"What is {i} times {i + 2}?",
                   f"{i} x {i + 2} = {i * (i + 2)}." + " Check: yes." * i), meta={"task": "gsm8k"})
           for i in range(7)]
    out += [Example(id=f"t{i}", source="books", text="The rabbit ran. " * (1 + 3 * i), meta={"task": "book_text"})
            for i in range(4)]
    return out


def test_batched_losses_equal_the_loss_of_each_example_alone(tok, tiny_model):
    """Golden invariant: rows of a padded batch see nothing of each other, so each value is the example's own."""
    enc, _ = encode_kept(examples(), tok, 512)
    got = mod.example_losses(tiny_model, enc, tok.pad_token_id, batch_size=3, show_progress=False)
    with torch.no_grad():
        alone = [float(s) / k for s, k in (sum_token_loss(tiny_model, collate([[e]], tok.pad_token_id)) for e in enc)]
    assert got == pytest.approx(alone, rel=1e-5)
    assert tiny_model.training  # the model is handed back as it came


def test_cached_by_model_and_data(tok, tiny_model, tmp_path, monkeypatch):
    enc, _ = encode_kept(examples(), tok, 512)
    pad = tok.pad_token_id
    first = mod.cached_example_losses(tiny_model, enc, pad, batch_size=4, show_progress=False, cache=tmp_path)
    files = list((tmp_path / "difficulty").iterdir())
    assert len(files) == 1 and json.loads(files[0].read_text())["losses"] == first

    def never(*a, **k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(mod, "example_losses", never)
    assert mod.cached_example_losses(tiny_model, enc, pad, 4, False, cache=tmp_path) == first
    monkeypatch.undo()
    other = load_model("smollm2-135m-instruct", hidden_dim=64, num_layers=2, seed=1)  # other weights: other entry
    assert mod.cached_example_losses(other, enc, pad, 4, False, cache=tmp_path) != first
    assert mod.cached_example_losses(tiny_model, enc[:-1], pad, 4, False, cache=tmp_path) == first[:-1]
    assert len(list((tmp_path / "difficulty").iterdir())) == 3
    files[0].write_text("{not json")  # a damaged entry is recomputed, never trusted
    assert mod.cached_example_losses(tiny_model, enc, pad, 4, False, cache=tmp_path) == pytest.approx(first)


def test_rules_model_and_mix_rank_within_each_source():
    sources = ["a"] * 4 + ["b"] * 2
    rules = [0.0, 0.5, 0.5, None, 0.9, 0.1]
    losses = [4.0, 1.0, 2.0, 3.0, 0.5, 7.0]
    # share of the source strictly easier; the unrated example counts as 0.5
    assert combine_difficulty("rules", rules, sources) == [0.0, 0.25, 0.25, 0.25, 0.5, 0.0]
    assert combine_difficulty("model", rules, sources, losses) == [0.75, 0.0, 0.25, 0.5, 0.0, 0.5]
    # mix: a's ranks average to [.375, .125, .25, .375], b's to a tie [.25, .25]; ranked again
    assert combine_difficulty("mix", rules, sources, losses, mix_weight=0.5) == [0.5, 0.0, 0.25, 0.5, 0.0, 0.0]
    assert combine_difficulty("mix", rules, sources, losses, mix_weight=1.0) == combine_difficulty(
        "model", rules, sources, losses)
    assert rank_within_source(["x"], [0.3]) == [0.0]
    with pytest.raises(ValueError, match="one model loss per example"):
        combine_difficulty("model", rules, sources)


def test_curriculum_data_scores_with_the_configured_model(tok, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(mod, "cache_dir", lambda: tmp_path)
    enc, exs = encode_kept(examples(), tok, 512)
    cfg = SFTConfig(hidden_dim=64, num_layers=2, eval_batch_size=4, curriculum={"difficulty": "model"})
    data = curriculum_data(cfg, enc, exs, tok.pad_token_id, show_progress=False)
    assert "freshly initialised" in caplog.text and (tmp_path / "difficulty").is_dir()
    assert data.tasks[0] == "gsm8k" and data.lengths == tuple(len(e.input_ids) for e in enc)
    tiny = load_model("smollm2-135m-instruct", hidden_dim=64, num_layers=2, seed=cfg.seed)
    expected = combine_difficulty("model", [e.difficulty for e in exs], [e.source for e in exs],
                                  mod.cached_example_losses(tiny, enc, tok.pad_token_id, 4, False, cache=tmp_path))
    assert list(data.difficulty) == expected
    rules = curriculum_data(SFTConfig(), enc, exs, tok.pad_token_id)
    assert rules == CurriculumData.from_examples(exs, [len(e.input_ids) for e in enc])


def test_a_difficulty_model_with_another_tokenizer_is_refused(monkeypatch):
    from curiosity_sft.errors import UserError

    class Vocab:
        def __init__(self, v):
            self.v = v

        def get_vocab(self):
            return self.v

    monkeypatch.setattr(mod, "load_tokenizer", lambda name: Vocab({"a": 0} if name == "other" else {"b": 0}))
    cfg = SFTConfig(curriculum={"difficulty": "model", "difficulty_model": "other"})
    with pytest.raises(UserError, match="another tokenizer"):
        mod.model_difficulty(cfg, [], 0)


def test_encode_kept_keeps_what_training_keeps_with_its_examples(tok):
    exs = examples() + [Example(id="long", source="books", text="word " * 400)]
    enc, kept = encode_kept(exs, tok, max_length=128)
    reference = encode_all(exs, tok, 128)
    assert [e.input_ids for e in enc] == [e.input_ids for e in reference.kept] and reference.n_dropped == 1
    assert [e.id for e in kept] == [e.id for e in exs if e.id != "long"]
