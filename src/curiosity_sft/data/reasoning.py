"""Reasoning formats: how a solution is written for a model that thinks before it answers.

A DeepSeek-R1 distill writes ``<think>`` + its reasoning + ``</think>`` and then a short answer;
the prepared GSM8K and MATH targets are plain worked solutions. ``reasoning_format`` (in the data
config and in the training config) decides how they are written:

- ``plain``: the solution as the reply, as prepared;
- ``think``: the worked steps inside ``<think>...</think>``, then a short final answer: ``#### N``
  for GSM8K, ``$\\boxed{...}$`` for MATH, the puzzle's answer for logic puzzles (whose records
  carry no worked steps, so their think block is empty; the count is logged);
- ``auto``: ``think`` when the model's chat template is made for reasoning (it prefills, cuts, adds
  or drops ``<think>`` blocks itself: ``chat_template.Behaviour.thinks``), else ``plain``.

Replies that already carry reasoning, in the ``reasoning_content`` field the Hugging Face
ecosystem uses or as an inline ``<think>`` block (also R1's raw output, whose opening tag was in the
prompt), are kept as they are in every format; only the whitespace around the tags is made
canonical (``<think>\\n{reasoning}\\n</think>\\n\\n{answer}``, what the R1 and Qwen3 templates render),
so a reply follows a generation prompt that ends ``<think>\\n``.

Which examples get the ``think`` rendering is decided by ``meta["task"]`` (contract 2), falling
back to the source label for data prepared before that key existed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Literal

from curiosity_sft.data.schema import Example

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ReasoningFormat = Literal["auto", "plain", "think"]
Resolved = Literal["plain", "think"]

# An optional opening tag (R1's raw outputs lack it: it was in the prompt), the reasoning, the answer.
_BLOCK = re.compile(r"\s*(?:<think>)?(.*?)</think>(.*)", re.S)
NOT_REASONING_TASKS = {"book_continuation", "book_text"}
_GSM8K_FINAL = re.compile(r"\n?\s*####\s*(.+?)\s*$", re.S)


def think_text(reasoning: str, answer: str) -> str:
    """The canonical reasoning reply: what R1 writes and what the R1 and Qwen3 templates render."""
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.strip()}"


def split_reasoning(message: dict[str, Any]) -> tuple[str | None, str]:
    """(reasoning or None, answer) of one message, from ``reasoning_content`` or an inline block."""
    content = str(message.get("content") or "")
    rc = message.get("reasoning_content")
    if isinstance(rc, str) and rc.strip():
        return rc.strip(), content.strip()
    m = _BLOCK.fullmatch(content)
    if m:
        return m.group(1).strip(), m.group(2).strip()
    return None, content


def normalise_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every assistant reply with reasoning as one canonical inline block (``reasoning_content`` folded in)."""
    out = []
    for m in messages:
        if m.get("role") == "assistant":
            reasoning, answer = split_reasoning(m)
            m = {k: v for k, v in m.items() if k != "reasoning_content"}
            if reasoning is not None:
                m["content"] = think_text(reasoning, answer)
        out.append(m)
    return out


def resolve_format(fmt: ReasoningFormat, template_thinks: bool) -> Resolved:
    """``auto`` -> ``think`` for a template made for reasoning, else ``plain``."""
    if fmt == "auto":
        return "think" if template_thinks else "plain"
    return fmt


def task_of(ex: Example) -> str | None:
    """``meta["task"]`` (contract 2), or the source label of data prepared before it existed."""
    task = ex.meta.get("task")
    if isinstance(task, str) and task:
        return task
    return ex.source if ex.source in ("gsm8k", "math", "logic") else None


def worked_solution(ex: Example, reply: str) -> tuple[str, str] | None:
    """(worked steps, short final answer) of a GSM8K / MATH / logic reply, or None for other tasks."""
    task = task_of(ex)
    if task is None or task in NOT_REASONING_TASKS or ex.meta.get("truncated"):
        return None  # a truncated reply has lost its final answer
    if task == "gsm8k":
        m = _GSM8K_FINAL.search(reply)
        if m is None or "####" not in reply:
            return None
        return reply[:reply.rfind("####")].strip(), f"#### {m.group(1)}"
    if task == "math":
        return (reply, f"$\\boxed{{{ex.answer}}}$") if ex.answer else None
    return "", reply  # a logic puzzle: the records hold the answer only, no worked steps


def format_example(ex: Example, fmt: Resolved) -> tuple[Example, str]:
    """(the example as training will see it, how: text / kept / plain / think / think_no_steps)."""
    if ex.messages is None:
        return ex, "text"
    messages = normalise_messages(ex.messages)
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    if any(split_reasoning(m)[0] is not None for m in messages if m["role"] == "assistant"):
        return replace(ex, messages=messages), "kept"
    solution = worked_solution(ex, messages[last]["content"]) if fmt == "think" else None
    if solution is None:
        return replace(ex, messages=messages), "plain"
    steps, final = solution
    messages[last] = {**messages[last], "content": think_text(steps, final)}
    return replace(ex, messages=messages), "think" if steps else "think_no_steps"


def format_examples(examples: Sequence[Example], fmt: Resolved) -> tuple[list[Example], Counter[str]]:
    """Every example in ``fmt``, with the count of each outcome (for the log and the manifest)."""
    out, how = [], Counter[str]()
    for ex in examples:
        formatted, h = format_example(ex, fmt)
        out.append(formatted)
        how[h] += 1
    return out, how
