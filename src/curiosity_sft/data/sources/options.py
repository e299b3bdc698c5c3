"""What a source reader may be told: the few per-format choices a data config can make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TokenCounter = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class SourceOptions:
    """Per-format switches. ``count_tokens`` is the real tokenizer's batch length function (None:
    estimate from words), so book passages are cut to fit ``passage_tokens`` of the model that trains."""

    strip_calculator: bool = True
    book_instructions: bool = True
    passage_tokens: int = 960
    count_tokens: TokenCounter | None = None
    source_name: str | None = None
