"""Every raw layout a user brings, read from small files written here: one test per format."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from curiosity_sft.data.records import BadRecords
from curiosity_sft.data.sources import detect_format, read_source
from curiosity_sft.data.sources.books import chapters, readability, strip_gutenberg
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError

GSM = {"question": "Natalia sold 48 clips in April and half as many in May. How many in total?",
       "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn total 48+24 = <<48+24=72>>72 clips.\n#### 72"}
MATH = {"problem": "What is $\\frac{1}{2}+\\frac{1}{4}$?", "level": "Level 2", "type": "Prealgebra",
        "solution": "We get $\\boxed{\\frac{3}{4}}$."}


def read(path, opts=None, bad=None):
    fmt = detect_format(path)
    return fmt, list(read_source(path, fmt, opts or SourceOptions(), bad or BadRecords()))


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_jsonl_strips_calculator_by_default_and_keeps_it_on_request(tmp_path):
    p = write_jsonl(tmp_path / "train.jsonl", [GSM])
    fmt, [(_, ex)] = read(p)
    assert fmt == "gsm8k" and ex.answer == "72" and "<<" not in ex.reference
    assert ex.difficulty == pytest.approx(1 / 7) and ex.meta == {"task": "gsm8k", "steps": 2}  # 2 steps -> (2-1)/7
    _, [(_, kept)] = read(p, SourceOptions(strip_calculator=False))
    assert "<<48/2=24>>" in kept.reference and kept.id == ex.id


def test_utf8_byte_order_mark_is_ignored(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(GSM).encode() + b"\r\n")
    assert read(p)[0] == "gsm8k"


def test_gsm8k_parquet_export(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist([GSM, {**GSM, "question": "Another?"}]), p)
    fmt, exs = read(p)
    assert fmt == "gsm8k" and [e.answer for _, e in exs] == ["72", "72"]


def _tar(path, members, mode="w:gz"):
    with tarfile.open(path, mode) as t:
        for name, rec in members.items():
            data = json.dumps(rec).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name,mode", [("MATH.tar.gz", "w:gz"), ("MATH.tar", "w")])
def test_math_archive_routes_test_members_to_test(tmp_path, name, mode):
    p = _tar(tmp_path / name, {"MATH/train/prealgebra/1.json": MATH,
                               "MATH/test/algebra/7.json": {**MATH, "problem": "2+2?", "solution": "$\\fbox{4}$"}})
    fmt, exs = read(p)
    assert fmt == "math"
    assert [(s, e.answer) for s, e in exs] == [("test", "4"), ("train", "\\frac{3}{4}")]
    assert exs[1][1].difficulty == 0.25 and exs[1][1].meta == {"task": "math", "level": "Level 2", "type": "Prealgebra"}


@pytest.mark.parametrize("member", ["/etc/evil.json", "MATH/../../evil.json"])
def test_hostile_archive_is_refused(tmp_path, member):
    p = _tar(tmp_path / "bad.tar.gz", {member: MATH})
    with pytest.raises(DataError, match="escapes the archive"):
        read(p)


def test_math_folder_and_hf_and_math500_exports(tmp_path):
    d = tmp_path / "MATH" / "train" / "algebra"
    d.mkdir(parents=True)
    (d / "1.json").write_text(json.dumps(MATH))
    _, [(_, ex)] = read(d / "1.json")
    assert ex.answer == "\\frac{3}{4}"
    hf = write_jsonl(tmp_path / "hf.jsonl", [MATH])
    assert read(hf)[1][0][1].answer == "\\frac{3}{4}"
    m500 = write_jsonl(tmp_path / "math500.jsonl", [{"problem": "p?", "solution": "s", "answer": "5", "subject": "Algebra",
                                                    "level": 5, "unique_id": "test/algebra/1.json"}])
    [(_, e)] = read(m500)[1]
    assert e.answer == "5" and e.difficulty == 1.0 and e.meta["type"] == "Algebra"


def test_reasoning_gym_logic_and_logic_rl(tmp_path):
    rg = write_jsonl(tmp_path / "logic.jsonl", [
        {"task": "zebra_puzzles", "params": {"num_people": 4, "num_characteristics": 4}, "question": "Who?", "answer": "bob"},
        {"task": "propositional_logic", "params": {}, "question": "What follows?", "answer": None,
         "metadata": {"example_answer": "P", "premises": ["P", "Q", "R"], "complexity": 1,
                      "difficulty": {"vars": [2, 4], "statements": [2, 4], "complexity": [1, 3]}}}])
    fmt, [(_, zebra), (_, prop)] = read(rg)
    assert fmt == "logic" and zebra.difficulty == 1.0 and zebra.answer == "bob"
    assert prop.answer is None and prop.reference == "P"  # many valid answers: trained on, not scored
    assert prop.difficulty == 0.25  # 3 premises in [2, 4] -> 0.5, no connectives (of at most 3) -> 0
    krl = write_jsonl(tmp_path / "people3_num100.jsonl", [
        {"quiz": "A very special island... Zoey says ...", "names": ["Zoey", "Ava", "Max"], "solution": [True, False, True],
         "solution_text": "Zoey is a knight, Ava is a knave, and Max is a knight"}])
    fmt, [(_, k)] = read(krl)
    assert fmt == "logic_rl" and k.source == "logic" and k.difficulty == pytest.approx(1 / 6)


def test_propositional_difficulty_comes_from_the_puzzle_not_the_example_answer(tmp_path):
    """Issue 12, item 7: ``metadata.complexity`` is the size of the example conclusion."""
    ranges = {"vars": [2, 4], "statements": [2, 4], "complexity": [1, 3]}

    def puzzle(premises, variables, answer, complexity):
        return {"task": "propositional_logic", "question": f"Given {premises} {answer}?", "answer": None,
                "metadata": {"premises": premises, "variables": variables, "complexity": complexity,
                             "example_answer": answer, "difficulty": ranges}}

    p = write_jsonl(tmp_path / "logic.jsonl", [
        puzzle(["P", "Q"], ["P", "Q"], "P", 1),
        puzzle(["P", "Q"], ["P", "Q"], "((P ∧ Q) ∨ ¬P)", 5),  # same puzzle, a bigger valid answer
        puzzle(["(P ∧ Q)", "(¬R → (P ↔ S))", "¬(Q ∨ S)"], ["P", "Q", "R", "S"], "P", 1)])
    _, [(_, small), (_, same), (_, big)] = read(p)
    assert small.difficulty == same.difficulty == 0.0
    # 3 premises in [2, 4] -> 0.5; 4 variables in [2, 4] -> 1; 6/3 connectives per premise of at most 3
    assert big.difficulty == pytest.approx((0.5 + 1 + 2 / 3) / 3)


@pytest.mark.parametrize("rec,user,reply", [
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}, "hi", "hello"),
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}, "hi", "hello"),
    ({"prompt": "p", "completion": "c"}, "p", "c"),
    ({"instruction": "i", "input": "x", "output": "o"}, "i\n\nx", "o"),
    ({"question": "q", "answer": 3}, "q", "3"),
])
def test_generic_chat_formats(tmp_path, rec, user, reply):
    p = write_jsonl(tmp_path / "mine.jsonl", [{**rec, "id": "u1"}])
    fmt, [(_, ex)] = read(p)
    assert fmt == "generic" and ex.source == "mine" and ex.meta == {"original_id": "u1"}
    assert ex.prompt_messages[-1]["content"] == user and ex.reference == reply


def test_generic_text_and_source_name_from_folder(tmp_path):
    (tmp_path / "poems").mkdir()
    p = write_jsonl(tmp_path / "poems" / "train.jsonl", [{"text": "Roses are red."}])
    fmt, [(_, ex)] = read(p)
    assert fmt == "generic" and ex.text == "Roses are red." and ex.source == "poems"


CHAPTER_TEXT = "\n\n".join(f"Paragraph {i} of the chapter, where the children walk through the wood and talk about "
                           f"what they will find at the end of the long path before night falls." for i in range(12))


def book(gutenberg: bool, newline: str) -> str:
    body = ("My Book\n\nCONTENTS\n\nCHAPTER I. Start\nCHAPTER II. End\n\n"
            f"CHAPTER I. Start\n\n{CHAPTER_TEXT}\n\nCHAPTER II. End\n\n{CHAPTER_TEXT}\n")
    if gutenberg:
        body = ("The Project Gutenberg eBook of My Book\n\n*** START OF THE PROJECT GUTENBERG EBOOK MY BOOK ***\n"
                + body + "*** END OF THE PROJECT GUTENBERG EBOOK MY BOOK ***\nLicence text here.\n")
    return body.replace("\n", newline)


@pytest.mark.parametrize("gutenberg,newline", [(True, "\r\n"), (False, "\n"), (True, "\n")])
def test_books_passages_fit_the_real_tokenizer(tmp_path, tok, gutenberg, newline):
    p = tmp_path / "my_book.txt"
    p.write_bytes(book(gutenberg, newline).encode())
    count = lambda ts: [len(x) for x in tok(ts, add_special_tokens=False)["input_ids"]]  # noqa: E731
    fmt, exs = read(p, SourceOptions(passage_tokens=120, count_tokens=count))
    texts = [e for _, e in exs if e.text is not None]
    chats = [e for _, e in exs if e.messages is not None]
    assert fmt == "books" and {e.meta["chapter"] for e in texts} == {0, 1}  # contents page dropped
    assert all(n <= 120 for n in count([e.text for e in texts]))
    assert all("Project Gutenberg" not in e.text and "CHAPTER" not in e.text and "\r" not in e.text for e in texts)
    assert all(e.text.startswith("Paragraph") for e in texts)  # passages start on paragraph boundaries
    assert len(chats) == len(texts) and chats[0].prompt_messages[0]["content"].startswith("Continue the story from My Book")
    _, only_lm = read(p, SourceOptions(passage_tokens=120, count_tokens=count, book_instructions=False))
    assert all(e.text is not None for _, e in only_lm)


def test_book_without_first_heading_keeps_its_opening():
    text = f"{CHAPTER_TEXT}\n\nCHAPTER II. Next\n\n{CHAPTER_TEXT}"
    assert len(chapters(text)) == 2 and strip_gutenberg("no header") == "no header"


def test_readability_orders_easy_before_hard():
    easy = "The cat sat. The dog ran. We had fun."
    hard = ("Notwithstanding considerable organisational complications, the administration's "
            "comprehensive infrastructural reconsideration necessitated extraordinary deliberation.")
    assert readability(easy) == 0.0 and readability(hard) == 1.0
