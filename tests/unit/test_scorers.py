"""Answer scorers on the outputs that trip naive ones: commas, units, signs, fractions, LaTeX,
several answers, no answer, ``<think>`` blocks; and GSM8K checked against lm-evaluation-harness."""

from __future__ import annotations

import pytest

from curiosity_sft.data.schema import Example, chat
from curiosity_sft.evaluation.logic_scorers import (
    score_knights_knaves,
    score_propositional,
    score_syllogism,
    score_zebra,
)
from curiosity_sft.evaluation.scorers import (
    extract_gsm8k,
    normalize_number,
    score_gsm8k,
    score_math,
    strip_think,
)
from curiosity_sft.evaluation.tasks import is_scorable, parse_tasks, score_example


@pytest.mark.parametrize("output,flexible,strict", [
    ("She earns 1,234 dollars.\n#### 1,234", "1234", "1234"),
    ("Total: $18.00", "18", None),  # value, not string: 18.00 == 18
    ("It costs 18 dollars a day for 3 days.", "3", None),  # flexible = the LAST number, as lm-eval
    ("The temperature drops to -5 degrees.", "-5", None),
    ("#### -12", "-12", "-12"),
    ("x = 2-3 = -1\n#### -1", "-1", "-1"),
    ("Half a cup: 1/2", "0.5", None),
    ("so the answer is \\boxed{1,000}. Checking: 10 x 100", "1000", None),  # a final \boxed{} wins
    ("$\\frac{3}{4}$ of the pie", "0.75", None),
    ("First 12, then 15, so 27.", "27", None),  # several numbers: the last
    ("I do not know.", None, None),
    ("<think>Maybe 40? No, 42.</think>The answer is 41.\n#### 41", "41", "41"),
    ("<think>it is 7 then</think>", None, None),  # nothing after thinking: no answer
    ("<think>unfinished 7 8 9", None, None),
    ("#### $2,500.", "2500", "2500"),
    ("The answer is .5 liters", "0.5", None),
])
def test_gsm8k_extraction(output, flexible, strict):
    assert extract_gsm8k(output, strict=False) == flexible
    assert extract_gsm8k(output, strict=True) == strict


def test_gsm8k_scoring_compares_values():
    assert score_gsm8k("#### 1,000", "1000", strict=True).correct
    assert score_gsm8k("that's 5.0", "5").correct
    assert not score_gsm8k("that's 5.5", "5").correct
    assert not score_gsm8k("no number here", "5").correct


@pytest.mark.parametrize("s,n", [("1,000", "1000"), ("$5", "5"), ("-0.50", "-0.5"), ("\\frac{1}{4}", "0.25"),
                                 ("3 / 4", "0.75"), ("12.", "12"), ("abc", None), ("1/0", None)])
def test_normalize_number(s, n):
    assert normalize_number(s) == n


def test_strip_think_keeps_only_the_answer():
    assert strip_think("<think>a</think> b <think>c</think> d") == "b  d"
    assert strip_think("reasoning in the prompt...</think>final") == "final"


@pytest.mark.parametrize("output,ref,ok", [
    ("So $x = \\boxed{\\frac{1}{2}}$.", "\\frac12", True),
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{2, 3}", "3, 2", True),  # a set of solutions, any order (math-verify)
    ("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt{2}}{2}", True),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", True),
    ("\\boxed{3}", "4", False),
    ("<think>\\boxed{4}</think> so \\boxed{3}", "3", True),
    ("no boxed answer and nothing mathematical", "7", False),
])
def test_math_equivalence(output, ref, ok):
    assert score_math(output, ref).correct is ok


@pytest.mark.parametrize("output,ok", [
    ("Victoria is a knight, and William is a knave.", True),
    ("William is a knave and Victoria is a knight", True),  # order free
    ("Victoria: knight. William: knave.", True),  # wording free
    ("**Victoria** is a knight\n**William** is a knave", True),  # markdown, one per line
    ("First guess: William is a knight. Re-checking... William is a knave, Victoria is a knight.", True),  # the final answer
    ("<answer>Victoria is a knight, and William is a knave</answer> (William lies)", True),  # reasoning-gym's tags
    ("Victoria is a knight.", False),  # someone missing
    ("Victoria is a knave, and William is a knave.", False),  # half right: partial credit is not correct
    ("Victoria is a knight/knave, and William is a knight/knave", False),  # the prompt's format hint echoed
    ("Victoria is a knight or a knave, and William is a knave", False),  # hedged
    ("If Victoria is a knave then William is a knave, so Victoria is a knight and William is a knave", False),  # mixed
])
def test_knights_knaves(output, ok):
    assert score_knights_knaves(output, "Victoria is a knight, and William is a knave.").correct is ok


def test_knights_knaves_partial_credit_is_kept_for_audit():
    half = score_knights_knaves("Victoria is a knave, and William is a knave.", "Victoria is a knight, and William is a knave.")
    assert not half.correct and half.credit == pytest.approx(0.65)  # reasoning-gym: 0.3 + 0.7 * 1/2


@pytest.mark.parametrize("output,ok", [
    ("Looking at clue 1... The answer is Bob.", True), ("**Bob**", True), ("<answer>bob</answer>", True),
    ("The answer is alice", False), ("either bob or someone else, not bob", False), ("not bob", False),
    ("bob or alice", False), ("The answer is: Bob, probably", False),
])
def test_zebra(output, ok):
    assert score_zebra(output, "bob").correct is ok


@pytest.mark.parametrize("output,ok", [
    ("No. It does not follow.", True), ("The answer is no", True), ("Maybe", False), ("Yes or no", False),
    ("Yes", False),
])
def test_syllogism(output, ok):
    assert score_syllogism(output, "No").correct is ok


PROP = {"premises": ["P", "((P ∧ Q) ∧ (P ∨ P))"], "variables": ["P", "Q", "R"]}  # the first shared puzzle


@pytest.mark.parametrize("conclusion,ok", [
    ("(R ∨ P)", True), ("(P → Q)", True), ("(Q ↔ P)", True), ("~R -> Q", True),  # entailed, new; ASCII read too
    ("R", False), ("¬Q", False), ("(P ∧ R)", False),  # not entailed
    ("Q", False),  # entailed, but atomic: reasoning-gym gives 0.25 ("trivial"), not full credit
    ("(P ∨ ¬P)", False),  # a tautology follows from anything
    ("((P ∧ Q) ∧ (P ∨ P))", False), ("(Q ∧ P)", False), ("P & Q", False), ("¬¬P", False),  # restated premises
    ("(P ∧ S)", False),  # S is not one of the puzzle's variables
])
def test_propositional(conclusion, ok):
    assert score_propositional(f"Reasoning.\nConclusion: {conclusion}", PROP).correct is ok


def test_propositional_restatement_is_ours_not_reasoning_gyms():
    s = score_propositional("((P ∧ Q) ∧ (P ∨ P))", PROP)
    assert not s.correct and s.credit == 1.0 and s.note == "restates a premise"
    assert score_propositional("I cannot say.", PROP).extracted is None


def test_every_task_dispatches_by_meta_task_not_source():
    gsm = Example("g", "grade_school", messages=chat("q", "a"), answer="1000", meta={"task": "gsm8k"})
    scores = score_example(gsm, "#### 1,000")
    assert scores["accuracy"].correct and scores["strict"].correct
    prop = Example("p", "puzzles", messages=chat("q", "a"), meta={"task": "propositional_logic", "reasoning_gym": PROP})
    assert is_scorable(prop) and score_example(prop, "(R ∨ P)")["accuracy"].correct
    kk = Example("k", "math", messages=chat("q", "a"), answer="Ann is a saint, and Bo is a sinner.",
                 meta={"task": "knights_knaves"})  # labelled `math` by its user: still a knights-and-knaves puzzle
    assert score_example(kk, "Bo is a sinner and Ann is a saint.")["accuracy"].correct
    generic = Example("x", "gsm8k", messages=chat("q", "a"), answer="Paris")  # no task: exact final answer
    assert "strict" not in score_example(generic, "Paris") and score_example(generic, "The answer is paris.")["accuracy"].correct
    assert not is_scorable(Example("t", "books", text="once upon a time", meta={"task": "book_text"}))
    assert parse_tasks("accuracy,perplexity") == ("perplexity", "accuracy") and len(parse_tasks(None)) == 3
    from curiosity_sft.errors import UserError
    with pytest.raises(UserError, match="unknown task"):
        parse_tasks("bleu,rouge")


def test_math_scoring_works_off_the_main_thread():
    """math-verify's timeout is signal.alarm, which raises off the main thread; every MATH answer
    scored from a thread was wrong. Only math-verify (not a string match) can accept these."""
    import threading

    cases = [("\\boxed{0.5}", "\\frac{1}{2}", True), ("\\boxed{x^2+2x+1}", "(x+1)^2", True), ("\\boxed{3}", "4", False)]
    got: list = []
    t = threading.Thread(target=lambda: got.extend(score_math(o, r).correct for o, r, _ in cases))
    t.start()
    t.join(timeout=120)
    assert got == [ok for _, _, ok in cases]


# Our GSM8K scorer against lm-evaluation-harness's gsm8k task, read from its installed YAML (its
# filters, its exact_match). AGREE: same verdict under both filters. DIFFER: every kind of
# disagreement docs/EVALUATION.md lists, with (ours strict, lm-eval strict, ours flexible,
# lm-eval flexible) verdicts and the kind `difference_kind` gives. bench/bench_lm_eval_gsm8k.py
# runs the same comparison on 200 real model outputs.
AGREE = [("The answer is 42.", "42"), ("#### 1,234", "1234"), ("So -3 degrees.\n#### -3", "-3"), ("$18 in total", "18"),
         ("He has 7 apples and 5 pears", "5"), ("nothing", "5"), ("#### 5\nthen 7", "5"), ("It is 10.5 km", "10.5"),
         ("#### 18.", "18"), ("Answer: 1,000,000", "1000000"), ("It is 5.5", "5")]
DIFFER = [  # output, answer, (ours strict, lm strict, ours flexible, lm flexible), kind
    ("#### $18", "18", (True, False, True, True), "`#### $18`: currency sign after ####"),
    ("####18", "18", (True, False, True, True), "`####18`: no space after ####"),
    ("####  18", "18", (True, False, True, True), "`####  18`: several spaces after ####"),
    ("#### 3/4", "3", (False, True, False, False), "`#### 3/4`: a fraction after ####"),  # lm-eval reads the numerator
    ("<think>#### 9</think>#### 8", "8", (True, False, True, True), "<think> block"),
    ("#### 18.00", "18", (True, False, True, False), "`18.00`: trailing zeros (lm-eval compares strings)"),
    ("\\boxed{12} since 3 * 4", "12", (False, False, True, False), "a final \\boxed{} before later numbers"),
    ("it is 3/4", "4", (False, False, False, True), "`3/4`: a fraction is one number"),
    ("The answer is 18.00", "18", (False, False, True, False), "`18.00`: trailing zeros (lm-eval compares strings)"),
    ("Total 8...", "8", (False, False, True, False), "lm-eval keeps trailing punctuation (`8...`, `8,`)"),
    ("It is 18. Done...", "18", (False, False, True, False), "lm-eval's match has no digit (`...`, `.,`)"),
    ("It takes 3-4 hours", "4", (False, False, True, False), "`3-4`: a hyphen read as a minus sign by lm-eval"),
    ("It costs 7 x2", "7", (False, False, True, False),
     "digits inside a word or unit (`x2`, `5th`, `10am`): lm-eval reads them"),
    ("<think>it is 9 or 8</think>I am not sure", "8", (False, False, False, True), "<think> block"),
    ("It is 8.\n\nQuestion: Tom has 3 apples", "8", (False, False, False, True),
     "`Question:` after the answer: lm-eval's generation stops there"),
]


def test_gsm8k_against_lm_eval_harness():
    from conftest import require

    require("lm_eval")
    from curiosity_sft.evaluation.lm_eval_gsm8k import LmEvalGSM8K, difference_kind

    lm = LmEvalGSM8K()
    assert lm.metric_kwargs["regexes_to_ignore"] == [",", "\\$", "(?s).*#### ", "\\.$"]  # the task we documented
    cases = [(o, a) for o, a in AGREE] + [(o, a) for o, a, _, _ in DIFFER]
    theirs = lm.verdicts([o for o, _ in cases], [a for _, a in cases])
    strict, flexible = theirs["strict-match"], theirs["flexible-extract"]
    for i, (out, ans) in enumerate(AGREE):
        assert score_gsm8k(out, ans, True).correct == strict[i].correct, out
        assert score_gsm8k(out, ans).correct == flexible[i].correct, out
    for j, (out, ans, verdicts, kind) in enumerate(DIFFER, start=len(AGREE)):
        ours_s, ours_f = score_gsm8k(out, ans, True), score_gsm8k(out, ans)
        assert (ours_s.correct, strict[j].correct, ours_f.correct, flexible[j].correct) == verdicts, out
        differs_strict = ours_s.correct != strict[j].correct
        got = difference_kind(out, differs_strict, *((ours_s.extracted, strict[j].extracted) if differs_strict
                                                     else (ours_f.extracted, flexible[j].extracted)))
        assert got == kind, out
