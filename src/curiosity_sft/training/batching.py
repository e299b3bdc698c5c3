"""Tokenize Examples with the model's chat template, mask labels, pack, collate.

Labels follow TRL's conventions: for chat examples only the assistant turns are trained (their
end-of-turn token included, so the model learns to stop); for ``text`` examples every token is,
plus EOS. Masking is decided by character spans of the rendered template, not by token ids,
so a pad token equal to EOS can never hide the EOS the model must learn.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from curiosity_sft.data.schema import Example

IGNORE = -100


@dataclass
class Encoded:
    """One tokenized example; ``labels`` is ``IGNORE`` where no loss is taken."""

    input_ids: list[int]
    labels: list[int]
    source: str = ""

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def assistant_spans(messages: list[dict[str, str]], tok: PreTrainedTokenizerBase) -> tuple[str, list[tuple[int, int]]]:
    """Render the chat and return the character spans of every assistant turn's trained text.

    A span starts after the generation prompt (``<|im_start|>assistant\\n``) and ends after the
    template's end-of-turn marker. Templates that rewrite earlier turns (e.g. dropping old
    ``<think>`` blocks) are handled by taking the common prefix of the renders.
    """
    full = tok.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        upto = tok.apply_chat_template(messages[: i + 1], tokenize=False)
        start = _common_prefix_len(before, full)
        end = _common_prefix_len(upto, full)
        if end > start:
            spans.append((start, end))
    return full, spans


def encode_example(ex: Example, tok: PreTrainedTokenizerBase) -> Encoded:
    """Tokenize one example with its loss mask (no truncation: length policy is the caller's)."""
    if ex.text is not None:
        ids = tok(ex.text, add_special_tokens=False)["input_ids"]
        if tok.bos_token_id is not None and getattr(tok, "add_bos_token", False):
            ids = [tok.bos_token_id] + ids
        ids = ids + [tok.eos_token_id]
        return Encoded(ids, list(ids), ex.source)
    assert ex.messages is not None
    text, spans = assistant_spans(ex.messages, tok)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [IGNORE] * len(ids)
    for j, (a, b) in enumerate(enc["offset_mapping"]):
        if b > a and any(s <= a and b <= e for s, e in spans):
            labels[j] = ids[j]
        elif b > a and any(a < e and s < b for s, e in spans):
            labels[j] = ids[j]  # a token straddling a span boundary still carries assistant text
    return Encoded(ids, labels, ex.source)


def encode_all(examples: Sequence[Example], tok: PreTrainedTokenizerBase, max_length: int) -> tuple[list[Encoded], int]:
    """Encode and drop (never truncate) examples over ``max_length``; returns (kept, dropped)."""
    kept, dropped = [], 0
    for ex in examples:
        e = encode_example(ex, tok)
        if len(e.input_ids) > max_length or e.n_trained == 0:
            dropped += 1
            continue
        kept.append(e)
    return kept, dropped


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
