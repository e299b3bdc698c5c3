import json

import pytest

from curiosity_sft.data.records import BadRecords
from curiosity_sft.data.schema import Example, read_examples, write_examples
from curiosity_sft.data.sources import detect_format, read_source
from curiosity_sft.data.sources.gsm8k import final_answer
from curiosity_sft.data.sources.math import last_boxed
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError


def read_one(p):
    fmt = detect_format(p)
    return fmt, [ex for _, ex in read_source(p, fmt, SourceOptions(), BadRecords())]


def test_example_needs_exactly_one_of_messages_or_text():
    with pytest.raises(ValueError):
        Example(id="x", source="s")
    with pytest.raises(ValueError):
        Example(id="x", source="s", text="a", messages=[{"role": "user", "content": "b"}])


def test_round_trip(tmp_path):
    e = Example(id="a", source="gsm8k", messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}],
                answer="3", difficulty=0.5, meta={"k": 1})
    write_examples(tmp_path / "x.jsonl", [e])
    assert read_examples(tmp_path / "x.jsonl") == [e]


@pytest.mark.parametrize("content,match", [
    (b'{"text": "ok"}\n{bad json\n', r":2: malformed JSON"),
    (b'{"messages": [{"role": "user", "content": "q"}]}\n', r":1: .*no assistant turn"),
    (b'\xff\xfe\n', r":1: not UTF-8"),
    (b"", r"no examples"),
    (b'{"foo": 1}\n', r":1: record has neither"),
    # issue 12, item 7: difficulty and meta were taken as they came
    (b'{"text": "ok"}\n{"text": "ok", "difficulty": 1.5}\n', r":2: `difficulty` must be a number in \[0, 1\] or null"),
    (b'{"text": "ok", "difficulty": -0.1}\n', r":1: `difficulty` must be a number in \[0, 1\]"),
    (b'{"text": "ok", "difficulty": "hard"}\n', r":1: `difficulty` must be a number"),
    (b'{"text": "ok", "difficulty": true}\n', r":1: `difficulty` must be a number"),
    (b'{"text": "ok", "difficulty": NaN}\n', r":1: `difficulty` must be a number"),
    (b'{"text": "ok", "meta": [1, 2]}\n', r":1: `meta` must be a JSON object, got list"),
    (b'{"text": "ok", "meta": {"difficulty_reason": 3}}\n', r":1: `meta.difficulty_reason` must be a non-empty string"),
    (b'{"text": "ok", "meta": {"task": ""}}\n', r":1: `meta.task` must be a non-empty string"),
])
def test_bad_prepared_files_name_file_and_line(tmp_path, content, match):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(content)
    with pytest.raises(DataError, match=match):
        read_examples(p)


def test_a_prepared_folder_must_say_why_a_difficulty_is_null(tmp_path):
    from curiosity_sft.io import atomic_write_json, ownership

    rows = b'{"text": "a", "difficulty": 0.25, "meta": {}}\n{"text": "b", "difficulty": null, "meta": {}}\n'
    (tmp_path / "val.jsonl").write_bytes(rows)
    assert [e.difficulty for e in read_examples(tmp_path / "val.jsonl")] == [0.25, None]  # a user's own file
    atomic_write_json(tmp_path / "manifest.json", {**ownership("prepare")})
    with pytest.raises(DataError, match=r"val.jsonl:2: `difficulty` is null without `meta.difficulty_reason`"):
        read_examples(tmp_path / "val.jsonl")
    (tmp_path / "val.jsonl").write_bytes(rows.replace(b'null, "meta": {}', b'null, "meta": {"difficulty_reason": "x"}'))
    assert read_examples(tmp_path / "val.jsonl")[1].meta == {"difficulty_reason": "x"}


def test_gsm8k_reader_strips_calculator_and_keeps_answer(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text(json.dumps({"question": "Q?", "answer": "48/2 = <<48/2=24>>24\n#### 1,024"}) + "\n")
    fmt, [e] = read_one(p)
    assert fmt == "gsm8k" and e.answer == "1024" and "<<" not in e.reference and e.reference.endswith("#### 1,024")
    assert final_answer("x\n#### -5") == "-5"


@pytest.mark.parametrize("text,expected", [
    (r"so $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
    (r"\boxed{1} then \boxed{x^{2}+1}", "x^{2}+1"),
    (r"\fbox{7}", "7"),
    (r"our answer is $\boxed 2$.", "2"),
    ("no answer", None),
    (r"\boxed{unclosed", None),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_generic_formats(tmp_path):
    rows = [{"prompt": "p", "completion": "c"}, {"instruction": "i", "input": "x", "output": "o"}]
    for r in rows:
        p = tmp_path / "g.jsonl"
        p.write_text(json.dumps(r) + "\n")
        fmt, [e] = read_one(p)
        assert fmt == "generic" and e.messages[-1]["role"] == "assistant"


def test_unrecognised_and_unsupported_files(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"foo": 1}\n')
    with pytest.raises(DataError, match="unrecognised"):
        detect_format(p)
    q = tmp_path / "x.csv"
    q.write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported"):
        detect_format(q)
