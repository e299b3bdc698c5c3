"""Each filter on hand-built examples whose fate is known: duplicates, contamination, length, mixing."""

from __future__ import annotations

import random

import pytest

from curiosity_sft.data.data_config import DataConfig
from curiosity_sft.data.decontamination import BOILERPLATE_DOCS, NgramIndex, contaminated, top_ngrams
from curiosity_sft.data.filters import content, exact_duplicates, jaccard, near_duplicates, shingles
from curiosity_sft.data.lengths import LengthCounter, percentiles, truncate
from curiosity_sft.data.mixing import cap, mix, shares
from curiosity_sft.data.schema import Example, chat, stable_id

STORY = ("the little fox ran over the hill to find the old owl who lived in the tall oak tree "
         "near the river where the children played every summer afternoon until the sun went down")


def ex(user: str, reply: str = "ok", source: str = "s") -> Example:
    return Example(id=stable_id(source, user, reply), source=source, messages=chat(user, reply))


def test_exact_duplicates_ignore_case_and_whitespace_and_repeat_ids():
    a, b = ex("What is 2+2?"), ex("what  is 2+2?")
    c = Example(id=a.id, source="s", messages=chat("different text", "ok"))  # same id: same question key
    text = Example(id="t", source="s", text="What is 2+2?\nok")  # same words, but a text example
    assert set(exact_duplicates([a, b, c, text])) == {1, 2}


def test_near_duplicates_catch_a_one_word_edit_but_not_a_new_story():
    base = ex(STORY)
    edited = ex(STORY.replace("every summer", "each summer"))
    other = ex(" ".join(reversed(STORY.split())))
    v = near_duplicates([base, edited, other], threshold=0.5)  # true Jaccard of the edit: 29/39
    assert list(v) == [1] and v[1].reason == "near_duplicate" and v[1].detail == base.id


def test_near_duplicate_recall_at_the_production_threshold():
    """Issue 12, item 3: pairs of known Jaccard (a block of k words replaced in texts of unique words)."""
    threshold = DataConfig().near_dup_threshold
    assert threshold == 0.9
    rng = random.Random(0)
    pool, known = [], []
    for length in (150, 250, 400):
        for k in range(1, 41):
            for _ in range(4):
                words = [f"w{rng.randrange(10**12)}" for _ in range(length)]
                at = rng.randrange(length - k)
                copy = words[:at] + [f"x{rng.randrange(10**12)}" for _ in range(k)] + words[at + k:]
                a, b = ex(" ".join(words), "same"), ex(" ".join(copy), "same")
                known.append(jaccard(set(shingles(content(a))), set(shingles(content(b)))))
                pool += [a, b]
    removed = {i // 2 for i in near_duplicates(pool, threshold)}
    high = [p for p, j in enumerate(known) if j >= threshold + 0.03]
    assert len(high) >= 50, len(high)  # enough pairs for the recall figure to mean something
    recall = sum(p in removed for p in high) / len(high)
    assert recall >= 0.95, recall
    assert not [p for p in removed if known[p] < threshold - 0.05]
    assert all(known[p] >= threshold for p in removed)  # exact confirmation: nothing below the threshold


def test_near_duplicates_with_different_answers_are_different_problems():
    preamble = "Infer a conclusion from the premises. Use the notation OR = ∨, AND = ∧, NOT = ¬. " * 4
    a = Example(id="a", source="logic", messages=chat(preamble + "1. Q 2. ¬Q 3. P", "(P ∧ Q)"))
    b = Example(id="b", source="logic", messages=chat(preamble + "1. Q 2. Q 3. P", "(Q ↔ P)"))
    c = Example(id="c", source="logic", messages=chat(preamble + "1. Q 2. Q 3. P", "(Q ↔ P)"))
    assert list(near_duplicates([a, b, c], threshold=0.8)) == [2]


def test_contamination_uses_long_ngrams_of_eval_prompts_only():
    index = NgramIndex(13)
    index.add(STORY)
    leaked = ex("Solve this: " + STORY + " How far?")
    short_overlap = ex(" ".join(STORY.split()[:12]) + " and then something else entirely happened")
    in_reply_only = ex("Tell me a story", reply=STORY)
    v = contaminated([leaked, short_overlap, in_reply_only], index)
    assert sorted(v) == [0, 2]  # a 12-word overlap is not contamination; a leak in the reply is
    assert v[0].detail == " ".join(STORY.split()[:13])


def test_boilerplate_shared_by_many_eval_prompts_is_ignored():
    stock = "express your answer as a common fraction in lowest terms and then add the numerator and denominator"
    index = NgramIndex(13)
    for i in range(BOILERPLATE_DOCS + 1):
        index.add(f"problem {i}: {stock}")
    assert contaminated([ex(f"my own problem. {stock}")], index) == {}


ASY = ("[asy]\nsize(150); real ticklen=3; real tickspace=2; real ticklength=0.1cm; real axisarrowsize=0.14cm;\n"
       "pen axispen=black+1.3bp; real vectorarrowsize=0.2cm; real tickdown=-0.5; real tickdownlength=-0.15inch;\n"
       "draw((-5,0)--(5,0),Arrows(4)); draw((0,-5)--(0,5),Arrows(4)); label(\"$x$\",(5,0),E);\n[/asy]")


def index_of(*prompts: str, n: int = 13) -> NgramIndex:
    index = NgramIndex(n)
    for p in prompts:
        index.add(p)
    return index


def test_shared_asymptote_code_is_not_contamination():
    """Issue 12, item 4: a third of the MATH drops shared only drawing code or a stock phrase."""
    index = index_of(f"The graph of $y = f(x)$ is shown below. {ASY} How many roots does $f$ have on the axis?")
    other = ex(f"The parabola below has its vertex where? {ASY} Give the coordinates.")
    leak = ex(f"Recall that the graph of y = f(x) is shown below. {ASY} How many roots does f have on the axis?")
    assert sorted(contaminated([other, leak], index)) == [1]


def test_latex_command_names_do_not_hide_a_leak():
    index = index_of(r"A jar holds $\dfrac{3}{4}$ of a liter of juice and Maria pours $\frac{1}{3}$ of it into a glass.")
    leak = ex("A jar holds 3/4 of a liter of juice and Maria pours 1/3 of it into a glass. How much is left?")
    v = contaminated([leak], index)
    assert list(v) == [0] and v[0].detail.startswith("a jar holds 3 4 of a liter")


def test_a_stock_phrase_common_in_training_is_boilerplate_at_the_phrase_level():
    stock = "can be written as $\\frac{m}{n}$, where $m$ and $n$ are relatively prime positive integers. Find $m+n$."
    index = index_of(f"Two dice are rolled and the probability that the sum is prime {stock}",
                     "A triangle has sides 13, 14 and 15 and a circle is inscribed in it. Find its radius.")
    # six training problems end with the same stock sentence; one shares 13 words of it with the test prompt
    train = [ex(f"Problem {k}: a coin is tossed {k} times and the probability of no two heads in a row {stock}")
             for k in range(BOILERPLATE_DOCS)]
    train.append(ex(f"Three cards are drawn and the probability that the sum is prime {stock}"))
    leak = ex("A triangle has sides 13, 14 and 15 and a circle is inscribed in it. What is its radius?")
    assert list(contaminated([*train, leak], index)) == [len(train)]
    # with fewer documents holding it, the phrase is specific again and the overlap counts
    assert list(contaminated([train[-1]], index)) == [0]


def test_shared_formula_notation_is_not_contamination():
    index = index_of(r"Let $p(x) = a_n x^n + a_{n-1} x^{n-1} + \dots + a_1 x + a_0$ be a polynomial with integer roots.")
    other = ex(r"Suppose $q(x) = a_n x^n + a_{n-1} x^{n-1} + \cdots + a_1 x + a_0$ has real coefficients only.")
    assert contaminated([other], index) == {}


def test_short_prompts_match_by_their_whole_normalised_text():
    index = index_of("Compute $\\dbinom{8}{4}$.", "Evaluate $\\log_28\\sqrt{2}$.")
    same = ex("Compute  $\\dbinom{8}{4}$")           # the test problem, typeset differently
    same2 = ex("evaluate $\\log_2 8 \\sqrt{2}$.")
    other = ex("Compute $\\dbinom{8}{5}$.")          # another problem
    words_alike = ex("Compute $8 \\cdot 4$.")        # same words once LaTeX commands are dropped
    v = contaminated([same, same2, other, words_alike], index)
    assert sorted(v) == [0, 1] and v[0].detail == "whole prompt: compute 8 4"


def test_top_shared_ngrams_count_the_drops_behind_each():
    index = index_of(STORY)
    v = contaminated([ex(STORY + " one"), ex(STORY + " two"), ex("Tell me a story")], index)
    assert top_ngrams(v.values()) == [{"ngram": " ".join(STORY.split()[:13]), "examples": 2}]


def test_lengths_use_the_chat_template(tok):
    counter = LengthCounter(tok)
    e = ex("Hi", "Hello")
    rendered = tok.apply_chat_template(e.messages, tokenize=False)
    assert counter.examples([e]) == [len(tok(rendered, add_special_tokens=False)["input_ids"])]
    t = Example(id="t", source="s", text="Once upon a time")
    assert counter.examples([t]) == [len(tok("Once upon a time", add_special_tokens=False)["input_ids"]) + 1]  # + EOS


def test_truncate_on_request_cuts_the_reply_and_marks_it(tok):
    counter = LengthCounter(tok)
    long = Example(id="x", source="s", messages=chat("Tell me a story", STORY * 5), answer="fox")
    [n] = counter.examples([long])
    short = truncate(long, n, n - 40, counter)
    assert short is not None and counter.examples([short])[0] <= n - 40
    assert short.meta["truncated"] and short.answer is None and STORY.startswith(short.reference[:50])
    assert truncate(long, n, 20, counter) is None  # the prompt alone does not fit: dropped, never cut
    text = Example(id="t", source="s", text=STORY * 5)
    [m] = counter.examples([text])
    assert counter.examples([truncate(text, m, 30, counter)]) == [30]


def test_percentiles_nearest_rank():
    # nearest rank on 1..100: p50 = 50, p95 = 95
    assert percentiles(list(range(100, 0, -1))) == {"p50": 50, "p95": 95, "max": 100, "total": 5050}
    assert percentiles([]) == {"p50": 0, "p95": 0, "max": 0, "total": 0}


def test_cap_is_a_seeded_sample():
    exs = [ex(f"q{i}", source="a") for i in range(10)] + [ex("b", source="b")]
    kept, dropped = cap(exs, {"a": 3}, seed=0)
    assert dropped == {"a": 7} and sum(e.source == "a" for e in kept) == 3 and kept[-1].source == "b"
    assert [e.id for e in cap(exs, {"a": 3}, seed=0)[0]] == [e.id for e in kept]


def test_mix_reaches_target_token_shares():
    a = [ex(f"a{i}", source="a") for i in range(10)]  # 10 x 10 tokens
    b = [ex(f"b{i}", source="b") for i in range(30)]  # 30 x 10 tokens
    out, lengths = mix(a + b, [10] * 40, {"a": 1, "b": 1}, seed=0)
    s = shares(out, lengths)
    assert s["a"]["tokens"] == 200 and s["b"]["tokens"] == 200  # 400 tokens split 1:1
    assert len({e.id for e in out}) == len(out)  # repeated examples get distinct ids
    assert any(e.meta.get("copy") == 1 for e in out)


@pytest.mark.parametrize("weights", [{}, {"a": 1}])
def test_mix_leaves_unweighted_sources_alone(weights):
    exs = [ex("x", source="a"), ex("y", source="b")]
    out, _ = mix(exs, [5, 7], weights, seed=0)
    assert [e.id for e in out] == [e.id for e in exs]
