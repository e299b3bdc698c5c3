"""Tokenize Examples with the model's chat template, mask labels, pack, collate.

Labels follow TRL's conventions: for chat examples only the assistant turns are trained, their
end-of-turn token included, so the model learns to stop; for ``text`` examples every token is,
plus EOS. Which text of a chat is trained is the chat template's business
(``curiosity_sft.chat_template``): exactly what the model must write after the template's own
generation prompt, reasoning included, every assistant turn of a conversation. Here the pieces it
returns are tokenized one by one, so the prompt is tokenized as ``evaluate`` tokenizes it, no token
straddles a prompt/reply boundary, and a pad token equal to EOS can never hide the EOS to learn.

An example is dropped, never truncated, for one of three reasons, counted apart and logged:
``too_long`` (a sequence over ``max_length``), ``nothing_to_train`` (no trained token) and
``template_mismatch`` (the template renders the prompt differently once the reply is added, or
drops the reply).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from curiosity_sft.chat_template import ChatTemplate, Piece, TemplateMismatch, setup_chat_template
from curiosity_sft.data.reasoning import ReasoningFormat, Resolved, format_example, resolve_format
from curiosity_sft.data.schema import Example, read_examples
from curiosity_sft.errors import UserError
from curiosity_sft.models import load_tokenizer

log = logging.getLogger(__name__)

IGNORE = -100
DROP_REASONS = {"too_long": "longer than max_length", "nothing_to_train": "with nothing to train",
                "template_mismatch": "that the chat template cannot train (template mismatch)"}


@dataclass
class Encoded:
    """One tokenized sequence; ``labels`` is ``IGNORE`` where no loss is taken.

    A conversation is one sequence, or one per turn where the template re-renders earlier turns
    (``ChatTemplate.pieces``); ``example_id`` ties a sequence to its example.
    """

    input_ids: list[int]
    labels: list[int]
    source: str = ""
    example_id: str = ""

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class Encoding:
    """What ``encode_all`` kept and why it dropped the rest."""

    kept: list[Encoded]
    examples: int
    reasoning_format: Resolved
    dropped: Counter[str] = field(default_factory=Counter)
    drops: dict[str, tuple[str, str]] = field(default_factory=dict)  # example id -> (reason, detail)
    formats: Counter[str] = field(default_factory=Counter)  # how each example was written (data.reasoning)

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def drop_summary(self, max_length: int) -> str:
        """``2 longer than max_length=512 (never truncated), 1 ... (template mismatch: turn 3: ...)``."""
        parts = []
        for reason, n in sorted(self.dropped.items()):
            detail = next((d for r, d in self.drops.values() if r == reason and d), "")
            what = DROP_REASONS[reason].replace("max_length", f"max_length={max_length} (never truncated)")
            parts.append(f"{n} {what}" + (f" (first: {detail})" if detail and reason != "too_long" else ""))
        return ", ".join(parts)


def as_chat_template(tok: PreTrainedTokenizerBase | ChatTemplate) -> ChatTemplate:
    return tok if isinstance(tok, ChatTemplate) else ChatTemplate(tok)


def _tokenize(tok: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """One batch call of the fast tokenizer (one call per piece would be far slower on 25k examples)."""
    return list(tok(texts, add_special_tokens=False)["input_ids"]) if texts else []


def encode_all(examples: Sequence[Example], tok: PreTrainedTokenizerBase | ChatTemplate, max_length: int,
               reasoning_format: ReasoningFormat = "auto") -> Encoding:
    """Write each example in its reasoning format, render it, tokenize it, and drop (never truncate)
    what cannot be trained, with the reason."""
    chat = as_chat_template(tok)
    tok = chat.tok
    has_chat = any(ex.messages is not None for ex in examples)
    fmt = resolve_format(reasoning_format, chat.behaviour.thinks if has_chat else False)
    res = Encoding([], len(examples), fmt)
    plans: list[tuple[Example, list[list[Piece]]]] = []
    for ex in examples:
        ex, how = format_example(ex, fmt)
        res.formats[how] += 1
        if ex.text is not None:
            plans.append((ex, [[(ex.text, True)]]))
            continue
        assert ex.messages is not None
        try:
            plans.append((ex, chat.pieces(ex.messages)))
        except TemplateMismatch as e:
            res.dropped["template_mismatch"] += 1
            res.drops[ex.id] = ("template_mismatch", str(e))
    flat = [text for _, seqs in plans for seq in seqs for text, _ in seq]
    ids_iter = iter(_tokenize(tok, flat))
    bos = tok.bos_token_id if tok.bos_token_id is not None and getattr(tok, "add_bos_token", False) else None
    for ex, seqs in plans:
        encoded = []
        for seq in seqs:
            ids: list[int] = []
            labels: list[int] = []
            for _, trained in seq:
                piece = next(ids_iter)
                ids += piece
                labels += piece if trained else [IGNORE] * len(piece)
            if ex.text is not None:
                ids = ([bos] if bos is not None else []) + ids + [tok.eos_token_id]
                labels = list(ids)
            encoded.append(Encoded(ids, labels, ex.source, ex.id))
        reason = ("too_long" if any(len(e.input_ids) > max_length for e in encoded) else
                  "nothing_to_train" if not any(e.n_trained for e in encoded) else None)
        if reason is not None:
            res.dropped[reason] += 1
            res.drops[ex.id] = (reason, f"{max(len(e.input_ids) for e in encoded)} tokens" if reason == "too_long" else "")
            continue
        res.kept += [e for e in encoded if e.n_trained]
    return res


def training_template(model_name: str, override: str | Path | None) -> ChatTemplate:
    """The tokenizer and its chat template as training uses them (override applied, round trip checked)."""
    return setup_chat_template(load_tokenizer(model_name), override)


def encode_file(path: str | Path, chat: ChatTemplate, max_length: int, reasoning_format: ReasoningFormat,
                what: str) -> Encoding:
    """Read and encode one prepared split for training, logging what was dropped and why."""
    res = encode_all(read_examples(path), chat, max_length, reasoning_format)
    shown = {k: v for k, v in sorted(res.formats.items()) if k != "text"}
    if shown:
        log.info("%s: reasoning_format %s -> %s: %s", path, reasoning_format, res.reasoning_format,
                 ", ".join(f"{k} {v}" for k, v in shown.items()))
    if res.formats.get("think_no_steps"):
        log.warning("%s: %d examples have no worked steps in the data (logic puzzles): their think block is empty",
                    path, res.formats["think_no_steps"])
    if res.n_dropped:
        log.warning("%s: dropped %d of %d examples: %s", path, res.n_dropped, res.examples, res.drop_summary(max_length))
    if not res.kept:
        raise UserError(f"no {what} example can be trained: {res.drop_summary(max_length)}", where=path,
                        fix="raise max_length" if res.dropped.get("too_long") else
                            "check the chat template with `curiosity-sft inspect`")
    if len(res.kept) != res.examples - res.n_dropped:
        log.info("%s: %d sequences from %d examples (the template re-renders earlier turns, so each such turn is "
                 "trained after its own history)", path, len(res.kept), res.examples - res.n_dropped)
    return res


@dataclass
class Batch:
    """Model inputs for one micro-batch.

    There is no attention mask: rows hold one or more examples laid end to end with
    ``position_ids`` restarting at each, and transformers reads restarting positions as packed
    sequences and builds a block-diagonal causal mask (masking_utils.find_packed_sequence_indices),
    so no token attends across examples. Trailing row padding is its own position run after the
    real tokens; causality keeps it invisible to them, and it carries no labels.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    row_real: tuple[int, ...]  # non-padding tokens of each row, for tokens/s

    @property
    def n_real(self) -> int:
        return sum(self.row_real)

    @property
    def n_rows(self) -> int:
        return int(self.input_ids.shape[0])

    def split(self) -> tuple[Batch, Batch]:
        """Two batches of half the rows each, trimmed to their own longest row (OOM recovery).

        Rows are independent sequences, so the halves' summed losses equal the whole's.
        """
        h = self.n_rows // 2
        parts = []
        for lo, hi in ((0, h), (h, self.n_rows)):
            L = max(self.row_real[lo:hi])
            parts.append(Batch(self.input_ids[lo:hi, :L], self.labels[lo:hi, :L], self.position_ids[lo:hi, :L],
                               self.row_real[lo:hi]))
        return parts[0], parts[1]

    @property
    def n_trained(self) -> int:
        """Tokens that contribute to the loss (a label at position t is predicted from t-1)."""
        return int((self.labels[:, 1:] != IGNORE).sum())

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.input_ids.to(device), self.labels.to(device), self.position_ids.to(device), self.row_real)


def collate(rows: Sequence[Sequence[Encoded]], pad_id: int) -> Batch:
    """Lay each row's examples end to end and right-pad rows to the longest."""
    L = max(sum(len(e.input_ids) for e in r) for r in rows)
    ids = torch.full((len(rows), L), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), L), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), L), dtype=torch.long)
    row_real = []
    for i, r in enumerate(rows):
        o = 0
        for e in r:
            n = len(e.input_ids)
            ids[i, o:o + n] = torch.tensor(e.input_ids)
            labels[i, o:o + n] = torch.tensor(e.labels)
            pos[i, o:o + n] = torch.arange(n)
            # The first token of each example is never a target: it would be predicted from the
            # previous example's last token, across the boundary.
            labels[i, o] = IGNORE
            o += n
        row_real.append(o)
        if o < L:
            pos[i, o:] = torch.arange(L - o)
    return Batch(ids, labels, pos, tuple(row_real))


def pack_bins(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit-decreasing bin packing of indices into rows of at most ``capacity`` tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    room: list[int] = []
    for i in order:
        for b, r in enumerate(room):
            if lengths[i] <= r:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return [sorted(b) for b in bins]


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The example order for one epoch, from (seed, epoch) alone, so resume can recompute it."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(n))
    rng.shuffle(order)
    return order


Plan = list[list[list[int]]]  # micro-batch -> rows -> example indices


def plan_epoch(lengths: Sequence[int], order: Sequence[int], batch_size: int, packing: bool,
               max_length: int, seed: int = 0, group_by_length: bool = True) -> Plan:
    """Decide every batch of an epoch up front, so its length is known and resume is exact.

    Work goes window by window (``batch_size * 16`` examples of the shuffled order), which keeps
    the randomness of the shuffle while letting examples of similar length meet:
    packed, a window is bin-packed into rows of ``max_length`` tokens, ``batch_size`` rows per
    batch; unpacked, a window is sorted by length and cut into batches of ``batch_size``
    examples (length-grouped batching: little padding), whose order is then shuffled; with
    ``group_by_length`` off the window keeps its shuffled order (more padding, batches that mix
    lengths, which measured slightly lower loss in bench/bench_train.py). Training plans in
    global batches and cuts each into micro-batches afterwards (loop.StepStream).
    """
    rng = random.Random(seed)
    plan: Plan = []
    window = batch_size * 16
    for w in range(0, len(order), window):
        idx = list(order[w:w + window])
        if packing:
            rows = [[idx[k] for k in b] for b in pack_bins([lengths[i] for i in idx], max_length)]
        else:
            rows = [[i] for i in (sorted(idx, key=lambda i: lengths[i]) if group_by_length else idx)]
        chunk = [rows[b:b + batch_size] for b in range(0, len(rows), batch_size)]
        rng.shuffle(chunk)
        plan.extend(chunk)
    return plan


def batches(encoded: Sequence[Encoded], plan: Plan, pad_id: int) -> Iterator[Batch]:
    for mb in plan:
        yield collate([[encoded[i] for i in row] for row in mb], pad_id)
