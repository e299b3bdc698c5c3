"""Length accounting with the real tokenizer and chat template, the way training will count.

A chat example's length is its rendered chat template (system prompt and end-of-turn tokens
included); a text example's is its tokens plus EOS, as ``training/batching.py`` encodes them.
Everything is tokenized in one batch call of the fast tokenizer: one call per example would not
fit 25k examples in the time budget. Without a tokenizer, lengths are estimated as characters/4.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from curiosity_sft.chat_template import ChatTemplate, TemplateMismatch
from curiosity_sft.data.schema import Example

CHARS_PER_TOKEN = 4


class LengthCounter:
    """Token lengths of examples and texts for one tokenizer (or the chars/4 estimate)."""

    def __init__(self, tokenizer: Any | None) -> None:
        self.tok = tokenizer
        self.chat = ChatTemplate(tokenizer) if tokenizer is not None else None
        self.unit = "tokens" if tokenizer is not None else "chars/4"

    def texts(self, texts: list[str]) -> list[int]:
        if self.tok is None or not texts:  # (fast tokenizers fail on an empty batch)
            return [-(-len(t) // CHARS_PER_TOKEN) for t in texts]
        return [len(ids) for ids in self.tok(texts, add_special_tokens=False)["input_ids"]]

    def render(self, ex: Example) -> str:
        if ex.messages is None:
            return ex.text or ""
        if self.chat is None:
            return "\n".join(m["content"] for m in ex.messages)
        try:  # the text training renders, reasoning kept (the R1 template alone would cut it)
            return self.chat.full_text(ex.messages)
        except TemplateMismatch:  # training drops it and says why (`inspect` shows it); estimate meanwhile
            return "\n".join(m["content"] for m in ex.messages)

    def examples(self, examples: Sequence[Example]) -> list[int]:
        lengths = self.texts([self.render(e) for e in examples])
        return [n + (1 if e.text is not None else 0) for n, e in zip(lengths, examples, strict=True)]

    def cut(self, text: str, n_tokens: int) -> str:
        """The longest prefix of ``text`` of at most ``n_tokens`` tokens."""
        if n_tokens <= 0:
            return ""
        if self.tok is None:
            return text[:n_tokens * CHARS_PER_TOKEN]
        offsets = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return text if len(offsets) <= n_tokens else text[:offsets[n_tokens - 1][1]]


def truncate(ex: Example, length: int, max_length: int, counter: LengthCounter) -> Example | None:
    """Shorten the text, or the last assistant turn, by the overflow; None if the prompt alone is too long.

    Only on request (``overflow: truncate``): the example is marked ``meta.truncated`` and loses
    its verifiable ``answer``, since the reference no longer ends with it.
    """
    over = length - max_length
    if ex.text is not None:
        text = counter.cut(ex.text, counter.texts([ex.text])[0] - over)
        return replace(ex, text=text, meta={**ex.meta, "truncated": True}) if text.strip() else None
    assert ex.messages is not None
    last = max(i for i, m in enumerate(ex.messages) if m["role"] == "assistant")
    reply = ex.messages[last]["content"]
    keep = counter.texts([reply])[0] - over - 2  # 2: merges at the cut can add a token
    if keep <= 0:
        return None
    messages = [*ex.messages[:last], {"role": "assistant", "content": counter.cut(reply, keep)}, *ex.messages[last + 1:]]
    return replace(ex, messages=messages, answer=None, meta={**ex.meta, "truncated": True})


def percentiles(lengths: Sequence[int]) -> dict[str, int]:
    """Nearest-rank p50/p95/max, and the total: integers, so the manifest is byte-stable."""
    if not lengths:
        return {"p50": 0, "p95": 0, "max": 0, "total": 0}
    s = sorted(lengths)

    def rank(q: float) -> int:
        return s[min(len(s) - 1, max(0, -(-len(s) * q // 100) - 1))]

    return {"p50": int(rank(50)), "p95": int(rank(95)), "max": int(s[-1]), "total": int(sum(s))}
