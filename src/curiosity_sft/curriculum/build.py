"""``curriculum.*`` config -> one sampler, and the table the run log shows at start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from curiosity_sft.chat_template import ChatTemplate
from curiosity_sft.config import SFTConfig
from curiosity_sft.curriculum.curiosity import CuriositySampler
from curiosity_sft.curriculum.data import CurriculumData
from curiosity_sft.curriculum.difficulty import model_difficulty
from curiosity_sft.curriculum.samplers import (
    CompetenceSampler,
    OrderedSampler,
    RandomSampler,
    Sampler,
    StagesSampler,
    StratifiedSampler,
)
from curiosity_sft.data.reasoning import ReasoningFormat
from curiosity_sft.data.schema import Example
from curiosity_sft.training.batching import Encoded, encode_all
from curiosity_sft.training.stream import total_steps


def build_sampler(cfg: SFTConfig, data: CurriculumData, global_batch: int) -> Sampler:
    """The sampler for ``cfg.curriculum.strategy``, with the run's length in steps decided here.

    An epoch is a pass of today's plan (``random``), for every strategy, so ``epochs`` means the
    same number of steps, and hence about the same tokens, whichever sampler runs.
    ``sampler.total_steps`` is what the loop trains for: ``max_steps``, or the steps of
    ``epochs`` passes of today's plan, each epoch's own count (``stream.total_steps``).
    """
    c = cfg.curriculum
    today = RandomSampler(data, global_batch, cfg.packing, cfg.max_length, cfg.seed, 1, cfg.group_by_length)
    total = total_steps(today.plans, cfg.epochs, cfg.max_steps)
    per_epoch = len(today.plan_for(0))
    common: dict[str, Any] = dict(data=data, global_batch=global_batch, packing=cfg.packing,
                                  max_length=cfg.max_length, seed=cfg.seed, total_steps=total)
    sampler: Sampler
    if c.strategy == "random":
        today.total_steps = total
        sampler = today
    elif c.strategy == "stratified":
        sampler = StratifiedSampler(**common, weights=c.weights)
    elif c.strategy == "ordered":
        sampler = OrderedSampler(**common)
    elif c.strategy == "competence":
        sampler = CompetenceSampler(**common, c0=c.competence_c0, p=c.competence_p, until=c.competence_until)
    elif c.strategy == "stages":
        sampler = StagesSampler(**common, order=c.stage_order, overlap=c.stage_overlap)
    else:
        sampler = CuriositySampler(**common, bands=c.curiosity_bands,
                                   reward=c.curiosity_reward, probe_examples=c.curiosity_probe_examples,
                                   probe_every=c.curiosity_probe_every, floor=c.curiosity_floor, lr=c.curiosity_lr,
                                   forget=c.curiosity_forget, smoothing=c.curiosity_smoothing,
                                   loss_smoothing=c.curiosity_loss_smoothing, reward_window=c.curiosity_reward_window)
    sampler.steps_per_epoch = per_epoch
    return sampler


def describe(sampler: Sampler, difficulty: str = "rules") -> str:
    """A plain-text table for the start-of-run log (one row per source, or per bucket for curiosity)."""
    rows = sampler.table()
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    cells = [[str(r.get(k, "")) for k in cols] for r in rows]
    widths = [max(len(k), *(len(c[j]) for c in cells)) for j, k in enumerate(cols)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)).rstrip()  # noqa: E731
    head = (f"curriculum {sampler.strategy} (difficulty: {difficulty}): {sampler.total_steps} steps, "
            f"{sampler.steps_per_epoch} per epoch, {len(sampler.data)} examples")
    return "\n".join([head, line(cols), *(line(c) for c in cells)])


def curriculum_data(cfg: SFTConfig, encoded: Sequence[Encoded], examples: Sequence[Example], pad_id: int,
                    device: torch.device | str = "cpu", show_progress: bool = True) -> CurriculumData:
    """What the sampler needs of the training sequences, with ``curriculum.difficulty`` resolved.

    ``encoded`` is the loop's training list and ``examples`` the Example each sequence came from
    (aligned; an example that trains as several sequences appears once per sequence). Only
    ``model`` and ``mix`` load a model (once, cached); ``rules`` reads the prepared ``difficulty``.
    """
    c = cfg.curriculum
    losses = None if c.difficulty == "rules" else model_difficulty(cfg, encoded, pad_id, device, show_progress)
    return CurriculumData.from_examples(examples, [len(e.input_ids) for e in encoded], c.difficulty, losses,
                                        c.mix_weight, c.unrated_difficulty)


def encode_kept(examples: Sequence[Example], tok: PreTrainedTokenizerBase | ChatTemplate, max_length: int,
                reasoning_format: ReasoningFormat = "auto") -> tuple[list[Encoded], list[Example]]:
    """``encode_all``'s kept sequences and, aligned with them, the Example each came from.

    A sampler needs each sequence's source and difficulty, which ``Encoded`` does not carry; its
    ``example_id`` names the example (a conversation may train as several sequences).
    """
    res = encode_all(examples, tok, max_length, reasoning_format)
    by_id = {e.id: e for e in examples}
    return res.kept, [by_id[e.example_id] for e in res.kept]
