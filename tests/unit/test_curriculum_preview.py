"""`curiosity-sft curriculum` shows the sampler's table and schedule from the real training file, before training."""

from __future__ import annotations

from curiosity_sft.cli import main
from curiosity_sft.data.schema import Example, chat, write_examples


def write_train(path):
    rows = [Example(id=f"g{i}", source="gsm8k", difficulty=(i % 4) / 3, meta={"task": "gsm8k"},
                    messages=chat(f"Tom has {i} apples and buys {i % 7} more. How many?", f"{i} + {i % 7} = "
                                  f"{i + i % 7}.\n#### {i + i % 7}")) for i in range(60)]
    rows += [Example(id=f"b{i}", source="stories", difficulty=(i % 5) / 4, meta={"task": "book_text"},
                     text=f"Once upon a time a fox named {i} ran to the river. " * (1 + i % 3)) for i in range(40)]
    write_examples(path, rows)


def test_preview_prints_the_table_and_the_schedule(tmp_path, capsys):
    write_train(tmp_path / "train.jsonl")
    base = ["curriculum", "--set", f"train_file={tmp_path / 'train.jsonl'}", "--set", "max_steps=20",
            "--set", "batch_size=2", "--set", "max_length=128"]
    assert main([*base, "--set", "curriculum.strategy=stages"]) == 0
    out = capsys.readouterr().out
    assert "curriculum stages (difficulty: rules): 20 steps" in out
    schedule = out.split("by window of steps:")[1].splitlines()
    assert schedule[1].split()[:3] == ["steps", "gsm8k", "stories"]
    assert schedule[2].split()[:3] == ["0-2", "0.0", "1.0"]  # books (stories) first, by task
    assert schedule[-1].split()[:3] == ["18-20", "1.0", "0.0"]
    assert main([*base, "--set", "curriculum.strategy=curiosity", "--set", "curriculum.curiosity_probe_examples=2"]) == 0
    assert "gsm8k:easy" in capsys.readouterr().out


def test_preview_without_data_is_one_line(tmp_path, capsys):
    assert main(["curriculum", "--set", f"train_file={tmp_path / 'none.jsonl'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train file not found" in err and "Traceback" not in err

