"""Decontamination: drop training examples that repeat an evaluation problem.

A training example (prompt or reply) is contaminated when it shares a run of ``n`` words (13 by
default, as in the GPT-3 paper) with the *prompt* of an evaluation example, or when its prompt is
an evaluation prompt, written differently. Only evaluation prompts are indexed: stock solution
phrasing ("we can write this as ...") is shared by honest examples too. Three things keep the
n-grams about the problem rather than about its typesetting or its stock wording:

- **Normalised text.** ``[asy]...[/asy]`` blocks (Asymptote drawing code: ``size(150); real
  ticklen=3; ...`` is the same in hundreds of MATH problems) and LaTeX command names (``\\frac``,
  ``\\mathbb``, ``\\left``) are removed and the text lower-cased before it is cut into words
  (letters and digits; ``_`` and ``^`` separate), so ``$\\frac{m}{n}$`` and ``$m/n$`` read alike.
- **Boilerplate at the phrase level.** An ``BOILERPLATE_SPAN``-word phrase found in more than
  ``BOILERPLATE_DOCS`` documents (evaluation prompts and training examples together) is a stock
  phrase ("... where m and n are relatively prime positive integers. Find m+n" is in 3 MATH test
  prompts and 49 training problems), and an n-gram only counts when none of its words lies in
  one, on either side: ignoring only the frequent n-grams themselves, as before, still matched
  every n-gram that overlapped the stock phrase by a few words of context.
- **Formula notation.** Once commands and sub/superscripts are split off, a run of 13 tokens can
  be pure notation (``a n x n a n 1 x n 1 a 1 x``), the same in unrelated problems: an n-gram
  counts only if it holds at least one word of three letters or more.
- **Whole prompts.** A prompt shorter than ``n`` words (814 of the 5,000 MATH test prompts) has
  no n-gram, and one made of stock phrases has none left; every evaluation prompt is therefore
  also matched by its whole text, compared after removing whitespace, ``$`` and LaTeX spacing.
  Equality, not containment, and with symbols and command names kept: with a handful of words,
  "Compute $\\sin 60^\\circ$" and "Compute $\\cos 60^\\circ$" differ only in what the word-level
  normalisation removes (27 such word-level "matches" on the shared data were all different
  problems).

Written here rather than taken from a library: the field's n-gram decontaminators (datatrove's
``NGramsDecontIndexer``/``NGramsDecontFilter``, lm-evaluation-harness's overlap check) index the
benchmarks of their own task registries and normalise case and punctuation, not LaTeX, Asymptote
or phrases that are stock on the training side, which is most of what goes wrong on MATH.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

from curiosity_sft.data.filters import Verdict, content
from curiosity_sft.data.schema import Example

ASY = re.compile(r"\[asy\].*?(?:\[/asy\]|$)", re.S | re.I)
LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
WORD = re.compile(r"[^\W_]+")
LAYOUT = re.compile(r"\\[,;:! ]|\\(?:left|right|displaystyle)(?![A-Za-z])|[\s$]")
BOILERPLATE_SPAN = 8
BOILERPLATE_DOCS = 5
TOP_NGRAMS = 20


def prompt_text(ex: Example) -> str:
    """What an evaluation example asks: its user turns, or its text."""
    if ex.messages is None:
        return ex.text or ""
    return "\n".join(m["content"] for m in ex.messages if m["role"] == "user")


def words(text: str) -> list[str]:
    """The words n-grams are made of: no drawing code, no LaTeX command names, lower case."""
    return WORD.findall(LATEX_COMMAND.sub(" ", ASY.sub(" ", text)).lower())


def is_word(token: str) -> bool:
    """A word of three letters or more. An n-gram without one is formula notation (``a_n x^n +
    a_{n-1} x^{n-1} + ... + a_1 x`` reads ``a n x n a n 1 x n 1 a 1 x``), shared by unrelated problems."""
    return len(token) >= 3 and token.isalpha()


def whole(text: str) -> str:
    """A prompt as compared whole: lower case, no whitespace, ``$`` or LaTeX spacing, one ``\\frac``."""
    text = text.lower().replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return LAYOUT.sub("", text).rstrip(".")


def _phrases(w: list[str]) -> set[tuple[str, ...]]:
    return {tuple(w[i:i + BOILERPLATE_SPAN]) for i in range(len(w) - BOILERPLATE_SPAN + 1)}


def clean_ngrams(w: list[str], n: int, boilerplate: set[tuple[str, ...]]) -> Iterator[tuple[str, ...]]:
    """The n-grams of ``w`` that share no word with a boilerplate phrase."""
    stock = bytearray(len(w))
    if boilerplate:
        for i in range(len(w) - BOILERPLATE_SPAN + 1):
            if tuple(w[i:i + BOILERPLATE_SPAN]) in boilerplate:
                stock[i:i + BOILERPLATE_SPAN] = b"\1" * BOILERPLATE_SPAN
    run = 0
    for i in range(len(w)):
        run = 0 if stock[i] else run + 1
        if run >= n:
            yield tuple(w[i - n + 1:i + 1])


class NgramIndex:
    """The evaluation prompts, normalised, that training examples are checked against."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.prompts: list[list[str]] = []
        self.wholes: set[str] = set()

    def add(self, text: str) -> None:
        self.prompts.append(words(text))
        if whole(text):
            self.wholes.add(whole(text))

    def __len__(self) -> int:
        return len(self.prompts)


def contaminated(examples: Sequence[Example], index: NgramIndex, skip: Iterable[int] = ()) -> dict[int, Verdict]:
    """Index -> verdict (with the shared n-gram) for examples that overlap an evaluation prompt.

    What is boilerplate depends on the training data too, so the one pass over the training texts
    counts, for every phrase of an evaluation prompt, how many documents hold it, and notes the
    texts that share any n-gram at all with an evaluation prompt; only those few are then checked
    again with the boilerplate known. (Keeping every text's words for a second full pass would
    hold millions of strings.)
    """
    if not index.prompts:
        return {}
    skipped = set(skip)
    n = index.n
    docs: Counter[tuple[str, ...]] = Counter()
    for w in index.prompts:
        docs.update(_phrases(w))
    known = set(docs)
    shared = {tuple(w[i:i + n]) for w in index.prompts for i in range(len(w) - n + 1)}
    candidates = []
    for i in range(len(examples)):
        if i in skipped:
            continue
        w = words(content(examples[i]))
        common = _phrases(w) & known
        docs.update(common)
        # a shared n-gram (n >= the phrase length) holds a shared phrase: most texts have none (85% here)
        if (common or n < BOILERPLATE_SPAN) and any(tuple(w[j:j + n]) in shared for j in range(len(w) - n + 1)):
            candidates.append(i)
    boilerplate = {p for p, k in docs.items() if k > BOILERPLATE_DOCS}
    grams = {g for w in index.prompts for g in clean_ngrams(w, n, boilerplate) if any(map(is_word, g))}
    out: dict[int, Verdict] = {}
    for i in candidates:
        hit = next((g for g in clean_ngrams(words(content(examples[i])), n, boilerplate) if g in grams), None)
        if hit is not None:
            out[i] = Verdict("contaminated", detail=" ".join(hit))
    for i in range(len(examples)):
        if i not in skipped and i not in out and whole(prompt_text(examples[i])) in index.wholes:
            out[i] = Verdict("contaminated", detail="whole prompt: " + " ".join(words(prompt_text(examples[i])))[:120])
    return dict(sorted(out.items()))


def top_ngrams(verdicts: Iterable[Verdict], k: int = TOP_NGRAMS) -> list[dict[str, object]]:
    """The shared n-grams behind the most contamination drops, for the manifest."""
    counts = Counter(v.detail for v in verdicts if v.reason == "contaminated")
    return [{"ngram": g, "examples": c} for g, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
