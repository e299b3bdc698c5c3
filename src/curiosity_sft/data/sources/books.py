"""Children's books: plain text, with or without the Project Gutenberg header/footer, CRLF or LF.

Front matter (title page, contents) is dropped, the text is split into chapters and then into
passages of whole paragraphs that fit ``passage_tokens`` of the real tokenizer, so no passage is
cut mid-sentence by the length filter later. Each passage is a language-modelling example (loss on
every token) and, if asked, a "continue the story" chat example: the first paragraphs are the
prompt and the rest the reply; the two share ``meta["split_group"]``, so they land in the same
split. Difficulty is the passage's Flesch-Kincaid grade (0 -> 0, 12+ -> 1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from curiosity_sft.data.records import check_text_file
from curiosity_sft.data.schema import Example, chat, stable_id
from curiosity_sft.data.sources.options import SourceOptions
from curiosity_sft.errors import DataError

START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
CHAPTER = re.compile(r"^[ \t]*(CHAPTER|Chapter)\s+([IVXLC]+|\d+)\b.*$", re.M)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'’”])\s+")
TOKENS_PER_WORD = 1.4  # SmolLM2 on these books: used only when no tokenizer is given
MIN_WORDS = 20
PROSE_WORDS = 20  # a paragraph this long that ends a sentence is story, not a title page or contents
PROSE_END = re.compile(r"[.!?][\"'’”]?$")


def strip_gutenberg(text: str) -> str:
    s = START.search(text)
    if s:
        text = text[s.end():]
    e = END.search(text)
    if e:
        text = text[:e.start()]
    return text


def paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def is_prose(para: str) -> bool:
    return len(para.split()) >= PROSE_WORDS and bool(PROSE_END.search(para))


def is_front_matter(text: str) -> bool:
    """Title pages and contents are short unpunctuated lines; a story's opening is sentences."""
    paras = paragraphs(text)
    words = sum(len(p.split()) for p in paras)
    prose = sum(len(p.split()) for p in paras if is_prose(p))
    return words == 0 or prose < words / 2


def chapters(text: str) -> list[str]:
    """Chapter bodies without their heading lines. Text before the first heading is kept only if
    it reads as prose: some copies drop the ``CHAPTER I`` heading and start straight in the story."""
    heads = list(CHAPTER.finditer(text))
    if not heads:
        return [text]
    out = [] if is_front_matter(text[:heads[0].start()]) else [text[:heads[0].start()]]
    bounds = [h.end() for h in heads]
    ends = [h.start() for h in heads[1:]] + [len(text)]
    return out + [text[a:b] for a, b in zip(bounds, ends, strict=True)]


def split_long(para: str, n_tokens: int, budget: int) -> list[str]:
    """A paragraph over the budget is split between sentences into roughly equal parts."""
    if n_tokens <= budget:
        return [para]
    sentences = SENTENCE_END.split(para)
    parts = -(-n_tokens // budget) + 1
    per = -(-len(sentences) // parts)
    return [" ".join(sentences[i:i + per]) for i in range(0, len(sentences), per)]


def passages(paras: list[str], lengths: list[int], budget: int) -> list[list[str]]:
    """Greedy runs of whole paragraphs whose token total stays within ``budget``."""
    out: list[list[str]] = []
    cur: list[str] = []
    n = 0
    for p, k in zip(paras, lengths, strict=True):
        if cur and n + k + 2 > budget:  # +2: the blank line joining paragraphs
            out.append(cur)
            cur, n = [], 0
        cur.append(p)
        n += k + 2
    if cur:
        out.append(cur)
    return out


def syllables(word: str) -> int:
    groups = re.findall(r"[aeiouy]+", word.lower())
    return max(1, len(groups) - (word.lower().endswith("e") and len(groups) > 1))


def readability(text: str) -> float:
    """Flesch-Kincaid grade level scaled to [0, 1] (grade 12 and above -> 1)."""
    words = re.findall(r"[A-Za-z]+", text)
    sentences = max(1, len(re.findall(r"[.!?]+", text)))
    if not words:
        return 0.0
    grade = 0.39 * len(words) / sentences + 11.8 * sum(map(syllables, words)) / len(words) - 15.59
    return min(1.0, max(0.0, grade / 12))


def decode(path: Path) -> str:
    data = check_text_file(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text (byte {e.start})", where=path, line=line,
                        fix="re-save the book as UTF-8") from None


def _count(texts: list[str], opts: SourceOptions) -> list[int]:
    if not texts:  # fast tokenizers fail on an empty batch
        return []
    if opts.count_tokens is not None:
        return opts.count_tokens(texts)
    return [round(len(t.split()) * TOKENS_PER_WORD) for t in texts]


def read(path: Path, opts: SourceOptions) -> Iterator[Example]:
    text = strip_gutenberg(decode(path).replace("\r\n", "\n").replace("\r", "\n"))
    book = path.stem
    title = book.replace("_", " ").replace("-", " ").title()
    # A contents page repeats the headings; the "chapters" between those lines are empty.
    paras_by_chapter = [ps for ps in map(paragraphs, chapters(text)) if sum(len(p.split()) for p in ps) >= MIN_WORDS]
    if not any(paras_by_chapter):
        raise DataError("no text after removing the Gutenberg header/footer", where=path)
    lengths = iter(_count([p for ps in paras_by_chapter for p in ps], opts))
    source = opts.source_name or "books"
    for ci, paras in enumerate(paras_by_chapter):
        pieces = [s for p in paras for s in split_long(p, next(lengths), opts.passage_tokens)]
        for pi, run in enumerate(passages(pieces, _count(pieces, opts), opts.passage_tokens)):
            passage = "\n\n".join(run)
            if len(passage.split()) < MIN_WORDS:
                continue
            # both examples of a passage share a split group: one in train and one in val would leak
            meta = {"book": book, "chapter": ci, "passage": pi, "split_group": stable_id(source, book, passage)}
            level = readability(passage)
            yield Example(id=stable_id(source, book, passage), source=source, text=passage, difficulty=level,
                          meta={**meta, "kind": "passage", "task": "book_text"})
            if opts.book_instructions and len(run) >= 2:
                half = len(run) // 2
                prompt = f"Continue the story from {title}:\n\n" + "\n\n".join(run[:half])
                yield Example(id=stable_id(source, "continue", book, passage), source=source,
                              messages=chat(prompt, "\n\n".join(run[half:])), difficulty=level,
                              meta={**meta, "kind": "continuation", "task": "book_continuation"})
