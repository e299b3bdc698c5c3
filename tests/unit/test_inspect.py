"""``curiosity-sft inspect``: what training will see, through training's own code path."""

from __future__ import annotations

import json

import pytest

from curiosity_sft.cli import main
from curiosity_sft.config import load_config
from curiosity_sft.data.schema import Example, chat, write_examples
from curiosity_sft.training.batching import IGNORE, training_template
from template_fixtures import FAMILIES, write_model_folder

KEYS = {"id", "rendered", "trained_text", "n_tokens", "n_trained"}


@pytest.fixture(scope="module")
def r1_folder(tok, tmp_path_factory):
    return write_model_folder(FAMILIES["r1"](tok), tmp_path_factory.mktemp("models") / "r1-fixture")


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "train.jsonl"
    write_examples(path, [
        Example("g1", "gsm8k", messages=chat("What is 2 + 3?", "Two and three make five.\n#### 5"), answer="5"),
        Example("long", "gsm8k", messages=chat("Count.", " ".join(["one"] * 200) + "\n#### 1"), answer="1"),
        Example("b1", "books", text="Once upon a time there was a fox."),
        Example("m1", "chat", messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                                        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]),
    ])
    return path


def test_json_has_exactly_the_keys_and_counts_what_training_counts(r1_folder, data, tmp_path, capsys):
    out = tmp_path / "inspect.json"
    args = ["inspect", "--set", f"model_name={r1_folder}", "--set", "max_length=128", "--data", str(data), "--n", "4"]
    assert main([*args, "--json", str(out)]) == 0
    records = json.loads(out.read_text())
    assert [r["id"] for r in records] == ["g1", "b1", "m1"]  # `long` is dropped, as training drops it
    assert all(set(r) == KEYS for r in records)
    g1 = records[0]
    assert g1["trained_text"] == "Two and three make five.\n</think>\n\n#### 5<｜end▁of▁sentence｜>"  # reasoning trained
    assert g1["rendered"].endswith("<｜Assistant｜><think>\nTwo and three make five.\n</think>\n\n#### 5<｜end▁of▁sentence｜>")
    # The loop's own loader gives the same sequences: the counts are the ones the loss sees.
    from curiosity_sft.training.loop import _load_split

    cfg = load_config(None, [f"model_name={r1_folder}", "max_length=128"])
    enc = _load_split(str(data), training_template(cfg.model_name, cfg.chat_template), cfg, "train")
    per_id: dict[str, list[int]] = {}
    for e in enc:
        per_id.setdefault(e.example_id, [0, 0])
        per_id[e.example_id][0] += len(e.input_ids)
        per_id[e.example_id][1] += sum(1 for x in e.labels[1:] if x != IGNORE)
    assert {r["id"]: [r["n_tokens"], r["n_trained"]] for r in records} == per_id
    shown = capsys.readouterr().out
    assert "dropped, longer than max_length" in shown
    assert "⟦Two and three make five.\n</think>\n\n#### 5<｜end▁of▁sentence｜>⟧" in shown  # trained text marked
    assert "4 examples -> 4 sequences" in shown  # m1's two plain turns: one sequence per turn under R1


def test_inspect_mistakes_are_one_line_errors(r1_folder, data, tmp_path, capsys):
    assert main(["inspect", "--set", f"model_name={r1_folder}", "--set", f"chat_template={tmp_path}/none.jinja",
                 "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.jinja: chat_template file not found" in err and len(err.splitlines()) == 1
    assert main(["inspect", "--data", str(tmp_path / "missing.jsonl")]) == 2
