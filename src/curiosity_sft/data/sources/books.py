"""Children's books: plain text, with or without the Project Gutenberg header/footer, CRLF or LF.

Front matter is dropped, the text is split into chapters and then into passages on paragraph
boundaries; each passage is a language-modelling example (loss on every token).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from curiosity_sft.data.schema import Example, stable_id
from curiosity_sft.errors import DataError

START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
CHAPTER = re.compile(r"^\s*(CHAPTER|Chapter)\s+[IVXLC\d]+\b.*$", re.M)
PASSAGE_WORDS = 220  # ~300 SmolLM2 tokens: fits the default max_length with room to spare


def strip_gutenberg(text: str) -> str:
    s = START.search(text)
    if s:
        text = text[s.end():]
    e = END.search(text)
    if e:
        text = text[:e.start()]
    return text


def chapters(text: str) -> list[str]:
    """Chapter bodies; text before the first chapter heading (title page, contents) is dropped."""
    heads = list(CHAPTER.finditer(text))
    if not heads:
        return [text]
    bounds = [h.start() for h in heads] + [len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def passages(chapter: str, max_words: int = PASSAGE_WORDS) -> list[str]:
    """Greedy runs of whole paragraphs up to ``max_words``; a longer paragraph stands alone."""
    paras = [" ".join(p.split()) for p in re.split(r"\n\s*\n", chapter) if p.strip()]
    out, cur, n = [], [], 0
    for p in paras:
        w = len(p.split())
        if cur and n + w > max_words:
            out.append("\n\n".join(cur))
            cur, n = [], 0
        cur.append(p)
        n += w
    if cur:
        out.append("\n\n".join(cur))
    return out


def read(path: Path) -> Iterator[Example]:
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte {e.start})", where=path) from None
    text = strip_gutenberg(raw.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.strip():
        raise DataError("no text after removing the Gutenberg header/footer", where=path)
    book = path.stem
    for ci, ch in enumerate(chapters(text)):
        body = ch.split("\n", 1)[1] if CHAPTER.match(ch) and "\n" in ch else ch
        for pi, passage in enumerate(passages(body)):
            if len(passage.split()) < 20:
                continue
            yield Example(id=stable_id("books", book, passage), source="books", text=passage,
                          meta={"book": book, "chapter": ci, "passage": pi})
