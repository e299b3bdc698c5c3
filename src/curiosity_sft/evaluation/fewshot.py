"""GSM8K few-shot prompts in lm-evaluation-harness's format, so our figures sit next to published ones.

lm-eval's ``gsm8k`` task (v3.0, lm-eval 0.4.13) asks ``Question: {question}\\nAnswer:`` and
shows ``num_fewshot`` (5) solved problems from the *training* split before it, each answer the
dataset's full solution (calculator notes and ``#### N`` included). The shots are drawn by its
default sampler: one ``random.Random(1234)`` (the default ``fewshot_random_seed``) drawing
``sample(train, n)`` for each test document in the test file's order. We are chat models, so the
shots are rendered as lm-eval renders them with ``--apply_chat_template --fewshot_as_multiturn``:
one user/assistant turn per shot, then the question as the last user turn and the template's own
generation prompt. Generation stops at ``Question:`` as lm-eval's ``until`` does.

Why by hand: lm-eval is an optional extra here and builds its prompts from Hugging Face datasets
it downloads; the sampler is a few lines, and ``tests/unit/test_fewshot.py`` checks it draws what
lm-eval's own ``ContextSampler`` draws when lm-eval is installed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from curiosity_sft.data.reasoning import task_of
from curiosity_sft.data.schema import Example, iter_jsonl
from curiosity_sft.errors import DataError, UserError

FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed
STOP_STRINGS = ("Question:",)  # lm-eval's gsm8k `until` (besides the end-of-turn tokens)
Shot = tuple[str, str]  # (question, full answer)


def question_turn(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def read_pool(path: str | Path) -> list[Shot]:
    """GSM8K training records (``question``/``answer``), in file order, as lm-eval reads the train split."""
    shots = [(r["question"], r["answer"]) for _, r in iter_jsonl(path)
             if isinstance(r, dict) and isinstance(r.get("question"), str) and isinstance(r.get("answer"), str)
             and "####" in r["answer"]]
    if not shots:
        raise DataError("no GSM8K records (`question`, `answer` with `#### N`) for few-shot examples", where=path,
                        fix="pass GSM8K's train.jsonl with --fewshot-file")
    return shots


def default_pool(data: str | Path) -> Path:
    """GSM8K's ``train.jsonl`` beside the evaluated file (the layout of the raw data)."""
    cand = Path(data).parent / "train.jsonl"
    if cand.resolve() != Path(data).resolve() and cand.is_file():
        for _, first in iter_jsonl(cand):
            if isinstance(first, dict) and "question" in first and "####" in str(first.get("answer", "")):
                return cand
            break
    raise UserError("--num-fewshot needs GSM8K's training split for its examples", where=data,
                    fix="pass --fewshot-file path/to/gsm8k/train.jsonl")


def assign_shots(examples: Sequence[Example], pool: Sequence[Shot], n: int) -> dict[str, list[Shot]]:
    """{example id: its n shots} for the GSM8K examples, drawn in the evaluated file's order.

    Drawn for every GSM8K example of the file, also those a ``--limit`` leaves out, so each
    problem gets the shots lm-eval gives it whatever the subset.
    """
    if n <= 0:
        return {}
    if n > len(pool):
        raise UserError(f"--num-fewshot {n} is more than the {len(pool)} GSM8K training examples given")
    rng = random.Random(FEWSHOT_SEED)
    out: dict[str, list[Shot]] = {}
    for ex in examples:
        if ex.messages is not None and task_of(ex) == "gsm8k":
            out[ex.id] = list(rng.sample(list(pool), n))
    return out


def fewshot_messages(ex: Example, shots: Sequence[Shot]) -> list[dict[str, str]]:
    """The example's prompt with its shots before it, every question in lm-eval's wording."""
    prompt = ex.prompt_messages
    msgs: list[dict[str, str]] = [m for m in prompt[:-1] if m["role"] == "system"]
    for q, a in shots:
        msgs += [{"role": "user", "content": question_turn(q)}, {"role": "assistant", "content": a}]
    return msgs + [{"role": "user", "content": question_turn(prompt[-1]["content"])}]
