"""The samplers: each decides the rows of every optimizer step (a global batch of example indices).

One interface for all, so the training loop has no per-strategy branches:

- ``next_step(step)`` -> rows (``list[list[int]]``: each row one example, or several packed),
  for the optimizer step that has ``step`` steps before it. The loop cuts the rows into
  micro-batches and each process takes its share, as it does with today's plan.
- ``state_dict()`` / ``load_state_dict()``: plain JSON-able values, restored whole on resume
  (the checkpoint's training-state record carries them as ``sampler``).
- ``metrics()``: what the loop logs at a logged step (``curriculum/...`` keys).
- ``wants_probe`` / ``probe_sets`` / ``observe`` / ``observe_train``: the learning-progress
  feedback only the curiosity sampler uses; the others accept and ignore it.

A sampler's choices are a function of (seed, step, its own state) and never of the process,
so every process computes the same rows and the processes' shares stay disjoint.
"""

from __future__ import annotations

import logging
import random
from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from curiosity_sft.curriculum.data import CurriculumData
from curiosity_sft.curriculum.pacing import allocate_rows, competence, stage_weights
from curiosity_sft.curriculum.streams import CycleStream, PoolDraws, fill_rows
from curiosity_sft.errors import UserError
from curiosity_sft.training.batching import Plan
from curiosity_sft.training.stream import ShuffledSampler

log = logging.getLogger(__name__)

Rows = list[list[int]]


class Sampler:
    """What every strategy shares: the data, the step's shape and the checks on a saved state."""

    strategy = "base"

    def __init__(self, data: CurriculumData, global_batch: int, packing: bool, max_length: int, seed: int,
                 total_steps: int) -> None:
        if packing and max(data.lengths) > max_length:
            raise ValueError("an example is longer than max_length: the loop drops those before sampling")
        self.data, self.global_batch, self.packing = data, global_batch, packing
        self.max_length, self.seed, self.total_steps = max_length, seed, max(1, total_steps)
        self.steps_per_epoch = 1  # set by build_sampler: the steps of one pass of today's plan
        self.drawn = 0
        self._min_length = min(data.lengths)

    # --- the per-step decision ---
    def next_step(self, step: int) -> Rows:
        """The rows of the optimizer step that has ``step`` steps before it."""
        self.drawn += 1
        return self._next(step)

    def _next(self, step: int) -> Rows:
        raise NotImplementedError

    def epoch_progress(self) -> float:
        """Epochs done once the step last drawn is trained, for the ``epoch`` metric (an epoch is
        the steps of one pass of today's plan)."""
        return self.drawn / self.steps_per_epoch

    def position(self) -> dict[str, int]:
        """Where the next step starts, as (epoch, step index in it), for the checkpoint's record."""
        return {"epoch": self.drawn // self.steps_per_epoch, "index": self.drawn % self.steps_per_epoch}

    def _warn_small(self, groups: dict[str, Sequence[int]], share: dict[str, float] | None = None) -> None:
        """Say which groups cannot fill their rows of a step (``share`` of them) without repeating examples."""
        unit = self.max_length if self.packing else 1
        size = {g: sum(self.data.lengths[i] for i in m) if self.packing else len(m) for g, m in groups.items()}
        small = [g for g in groups if size[g] < self.global_batch * (share or {}).get(g, 1.0) * unit]
        if small:
            log.warning("%s: %s hold%s less than %s rows of a step, so %s examples repeat within a step; fewer "
                        "buckets or a smaller global batch avoid it", self.strategy, ", ".join(small),
                        "s" if len(small) == 1 else "", "their" if share else "the", "their")

    def _fill(self, stream: Any, n_rows: int) -> Rows:
        return fill_rows(stream, n_rows, self.data.lengths, self.max_length if self.packing else None,
                         self._min_length)

    # --- learning-progress feedback (curiosity); the other strategies need none ---
    def wants_probe(self, step: int) -> bool:
        return False

    def probe_sets(self) -> dict[str, list[int]]:
        return {}

    def observe(self, step: int, losses: dict[str, float]) -> None:
        """Held-out loss of every bucket, measured before step ``step`` (curiosity only)."""

    def observe_train(self, step: int, loss: float) -> None:
        """Training loss of the step just run (curiosity with ``heldout+train`` only)."""

    def metrics(self) -> dict[str, float]:
        return {}

    def held_out(self) -> set[int]:
        """Examples this sampler never trains on (the curiosity probes)."""
        return set()

    def table(self) -> list[dict[str, Any]]:
        """One row per source (or bucket) for the start-of-run log: examples, tokens, share."""
        tokens = {s: 0 for s in self.data.source_names}
        counts = dict.fromkeys(tokens, 0)
        for s, n in zip(self.data.sources, self.data.lengths, strict=True):
            tokens[s] += n
            counts[s] += 1
        total = sum(tokens.values())
        return [{"group": s, "examples": counts[s], "tokens": tokens[s], "token_share": round(tokens[s] / total, 4)}
                for s in tokens]

    # --- resume ---
    def state_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "data": self.data.fingerprint(), "global_batch": self.global_batch,
                "drawn": self.drawn, **self._state()}

    def load_state_dict(self, state: dict[str, Any], check_data: bool = True) -> None:
        """``check_data=False`` (``--force-resume``) continues on changed data from the saved state."""
        if state.get("strategy") != self.strategy:
            raise UserError(f"the checkpoint was written with curriculum.strategy={state.get('strategy')}, "
                            f"this run uses {self.strategy}", where="curriculum.strategy",
                            fix=f"resume with --set curriculum.strategy={state.get('strategy')}")
        if check_data and state.get("data") != self.data.fingerprint():
            raise UserError("the checkpoint's sampler was built on other training data (examples, lengths or "
                            "difficulties differ)", where="train_file",
                            fix="resume with the same train_file, max_length, tokenizer and curriculum.difficulty")
        self.drawn = int(state["drawn"])
        self._load(state)

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


class RandomSampler(Sampler):
    """Today's shuffle, exactly: the epoch plans of ``stream.ShuffledSampler``, walked step by step.

    The default, so existing runs and their loss curves do not move.
    """

    strategy = "random"

    def __init__(self, data: CurriculumData, global_batch: int, packing: bool, max_length: int, seed: int,
                 total_steps: int, group_by_length: bool = False) -> None:
        super().__init__(data, global_batch, packing, max_length, seed, total_steps)
        self.plans = ShuffledSampler(data.lengths, global_batch, packing, max_length, seed, group_by_length)
        self.epoch, self.index = 0, 0
        self._plan = self.plan_for(0)

    def plan_for(self, epoch: int) -> Plan:
        return self.plans.plan(epoch)

    def _next(self, step: int) -> Rows:
        if self.index >= len(self._plan):
            self.epoch, self.index = self.epoch + 1, 0
            self._plan = self.plan_for(self.epoch)
        self.index += 1
        return self._plan[self.index - 1]

    def epoch_progress(self) -> float:
        return self.epoch + self.index / len(self._plan)

    def position(self) -> dict[str, int]:
        """Normalised so a finished epoch reads as the next one's start."""
        if self.index >= len(self._plan):
            return {"epoch": self.epoch + 1, "index": 0}
        return {"epoch": self.epoch, "index": self.index}

    def _state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "index": self.index}

    def _load(self, state: dict[str, Any]) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])
        saved = int(state.get("global_batch", self.global_batch))
        if saved != self.global_batch:
            # The epoch is re-planned in steps of another size: only the share of it already done carries over.
            self.index = self.index * saved // self.global_batch
            log.warning("the checkpoint's global batch was %d, now %d: the rest of epoch %d is re-planned and some "
                        "of its examples may be repeated or skipped (pass --keep-global-batch to keep it exact)",
                        saved, self.global_batch, self.epoch)
        self._plan = self.plan_for(self.epoch)


def saved_state(sampler: dict[str, Any], position: dict[str, int], global_batch: int, step: int,
                data: CurriculumData) -> dict[str, Any]:
    """The sampler state of a checkpoint's record; one written before the curriculum samplers (its
    sampler only ``{"name": "shuffled"}`` or nothing) held today's plan at ``position``: ``random``."""
    if "strategy" in sampler:
        return sampler
    return {"strategy": "random", "data": data.fingerprint(), "global_batch": global_batch, "drawn": step,
            "epoch": int(position["epoch"]), "index": int(position["index"])}


def natural_weights(data: CurriculumData, packing: bool) -> dict[str, float]:
    """Each source's share of what a step holds: tokens when packing (rows are ~full), else examples."""
    out = dict.fromkeys(data.source_names, 0.0)
    for s, n in zip(data.sources, data.lengths, strict=True):
        out[s] += n if packing else 1
    return out


def check_weights(weights: dict[str, float], sources: Sequence[str]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(sources))
    if unknown:
        raise UserError(f"curriculum.weights names `{unknown[0]}`, which is not a source of the training data",
                        where="curriculum.weights", fix=f"use the sources {', '.join(sources)}")
    if not any(w > 0 for w in weights.values()) or any(w < 0 for w in weights.values()):
        raise UserError("curriculum.weights must be >= 0 with at least one > 0", where="curriculum.weights")
    missing = [s for s in sources if s not in weights]
    if missing:
        log.warning("curriculum.weights gives no weight to %s: those sources are not sampled", ", ".join(missing))
    return {s: float(weights[s]) for s in sources if weights.get(s, 0) > 0}


class _SourceMix(Sampler):
    """Steps whose rows are split between sources by weights (stratified, stages).

    Each source's rows come from its own stream (a fresh seeded shuffle each cycle), and the
    rows are then shuffled so each micro-batch mixes sources.
    """

    def __init__(self, data: CurriculumData, global_batch: int, packing: bool, max_length: int, seed: int,
                 total_steps: int) -> None:
        super().__init__(data, global_batch, packing, max_length, seed, total_steps)
        self.streams = {s: CycleStream(m, seed, f"{self.strategy}:{s}") for s, m in data.members().items()}
        self.credit: dict[str, float] = {}

    def weights_at(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    def _next(self, step: int) -> Rows:
        counts = allocate_rows(self.credit, self.weights_at(step), self.global_batch)
        rows: Rows = []
        for s in sorted(counts):
            rows += self._fill(self.streams[s], counts[s])
        random.Random(f"{self.seed}:{self.strategy}:rows:{step}").shuffle(rows)
        return rows

    def _state(self) -> dict[str, Any]:
        return {"credit": dict(self.credit), "streams": {s: st.state_dict() for s, st in self.streams.items()}}

    def _load(self, state: dict[str, Any]) -> None:
        self.credit = {s: float(v) for s, v in state["credit"].items()}
        for s, st in state["streams"].items():
            self.streams[s].load_state_dict(st)


class StratifiedSampler(_SourceMix):
    """Every step draws each source in proportion to its mixing weight: the baseline to beat (Aioli, 2025)."""

    strategy = "stratified"

    def __init__(self, data: CurriculumData, global_batch: int, packing: bool, max_length: int, seed: int,
                 total_steps: int, weights: dict[str, float] | None = None) -> None:
        super().__init__(data, global_batch, packing, max_length, seed, total_steps)
        raw = natural_weights(data, packing) if weights is None else weights
        self.weights = check_weights(raw, data.source_names)
        total = sum(self.weights.values())
        self._warn_small({s: m for s, m in data.members().items() if s in self.weights},
                         {s: w / total for s, w in self.weights.items()})

    def weights_at(self, step: int) -> dict[str, float]:
        return self.weights

    def table(self) -> list[dict[str, Any]]:
        total = sum(self.weights.values())
        return [{**row, "weight": round(self.weights.get(row["group"], 0.0) / total, 4)} for row in super().table()]


# Where a source's task family sits in the default stage order (children's books -> GSM8K -> MATH
# -> logic): contract 2's meta["task"], not the user-chosen source label.
_FAMILY_RANK = {"book_text": 0, "book_continuation": 0, "gsm8k": 1, "math": 2}
_LOGIC_RANK, _OTHER_RANK = 3, 4


def default_stage_order(data: CurriculumData) -> list[str]:
    """Sources ordered books, GSM8K, MATH, logic, then anything else, by their examples' task."""
    ranks: dict[str, list[int]] = {}
    for s, task in zip(data.sources, data.tasks, strict=True):
        rank = _OTHER_RANK if task is None else _FAMILY_RANK.get(task, _LOGIC_RANK)
        ranks.setdefault(s, []).append(rank)
    typical = {s: sorted(r)[len(r) // 2] for s, r in ranks.items()}
    return sorted(typical, key=lambda s: (typical[s], s))


class StagesSampler(_SourceMix):
    """One source after another (default books -> GSM8K -> MATH -> logic), neighbours blended at the seams."""

    strategy = "stages"

    def __init__(self, data: CurriculumData, global_batch: int, packing: bool, max_length: int, seed: int,
                 total_steps: int, order: Sequence[str] | None = None, overlap: float = 0.25) -> None:
        super().__init__(data, global_batch, packing, max_length, seed, total_steps)
        sources = data.source_names
        if order is None:
            self.order = default_stage_order(data)
            log.info("stages: %s (by each source's task: books, GSM8K, MATH, logic, then sources without a task; "
                     "curriculum.stage_order sets another)", " -> ".join(self.order))
        else:
            self.order = list(order)
            unknown = [s for s in self.order if s not in sources]
            missing = [s for s in sources if s not in self.order]
            if unknown or missing or len(set(self.order)) != len(self.order):
                what = (f"names `{unknown[0]}`, not a source of the training data" if unknown else
                        f"leaves out `{missing[0]}`" if missing else "lists a source twice")
                raise UserError(f"curriculum.stage_order {what}", where="curriculum.stage_order",
                                fix=f"list each source once: {', '.join(sources)}")
        self.overlap = overlap
        self._warn_small(data.members())

    def weights_at(self, step: int) -> dict[str, float]:
        w = stage_weights(step / self.total_steps, len(self.order), self.overlap)
        return {s: x for s, x in zip(self.order, w, strict=True) if x > 0}

    def table(self) -> list[dict[str, Any]]:
        rows = {r["group"]: r for r in super().table()}
        n = len(self.order)
        return [{**rows[s], "stage": k + 1, "steps": f"{round(k * self.total_steps / n)}-"
                 f"{round((k + 1) * self.total_steps / n)}"} for k, s in enumerate(self.order)]


class OrderedSampler(Sampler):
    """Easy to hard within each epoch, by within-source difficulty rank (ties in a seeded order)."""

    strategy = "ordered"

    def __init__(self, data: CurriculumData, global_batch: int, packing: bool, max_length: int, seed: int,
                 total_steps: int) -> None:
        super().__init__(data, global_batch, packing, max_length, seed, total_steps)
        self.stream = CycleStream(range(len(data)), seed, "ordered", order=self._easy_to_hard)

    def _easy_to_hard(self, epoch: int) -> list[int]:
        rng = random.Random(f"{self.seed}:ordered:{epoch}")
        tie = [rng.random() for _ in range(len(self.data))]
        return sorted(range(len(self.data)), key=lambda i: (self.data.difficulty[i], tie[i]))

    def _next(self, step: int) -> Rows:
        return self._fill(self.stream, self.global_batch)

    def _state(self) -> dict[str, Any]:
        return {"stream": self.stream.state_dict()}

    def _load(self, state: dict[str, Any]) -> None:
        self.stream.load_state_dict(state["stream"])


class CompetenceSampler(Sampler):
    """Platanios et al. (2019): at step t, uniform draws among examples of difficulty rank <= c(t).

    c(t) reaches 1 at ``until`` x the run's steps; after that every example is eligible (plain
    sampling, easy data kept in the mix). Draws are without replacement within a step, from a
    generator seeded by the step, so the schedule needs no state to resume.
    """

    strategy = "competence"

    def __init__(self, data: CurriculumData, global_batch: int, packing: bool, max_length: int, seed: int,
                 total_steps: int, c0: float = 0.01, p: int = 2, until: float = 0.5) -> None:
        super().__init__(data, global_batch, packing, max_length, seed, total_steps)
        self.c0, self.p = c0, p
        self.until_step = max(1, round(self.total_steps * until))
        self.order = sorted(range(len(data)), key=lambda i: (data.difficulty[i], i))
        self._sorted = [data.difficulty[i] for i in self.order]
        self.last = competence(0, self.until_step, c0, p)

    def competence_at(self, step: int) -> float:
        return competence(step, self.until_step, self.c0, self.p)

    def eligible(self, step: int) -> int:
        """How many examples step ``step`` may draw from (never none: rank 0 is always eligible)."""
        return bisect_right(self._sorted, self.competence_at(step))

    def _next(self, step: int) -> Rows:
        self.last = self.competence_at(step)
        draws = PoolDraws(self.order, self.eligible(step), random.Random(f"{self.seed}:competence:{step}"))
        return self._fill(draws, self.global_batch)

    def metrics(self) -> dict[str, float]:
        return {"curriculum/competence": self.last}

    def table(self) -> list[dict[str, Any]]:
        """Per source, the share of its examples eligible at 0, 1/4, 1/2 and all of the pacing."""
        marks = [0, self.until_step // 4, self.until_step // 2, self.until_step]
        out = []
        for row in super().table():
            d = [self.data.difficulty[i] for i in self.data.members()[row["group"]]]
            out.append({**row, **{f"eligible@{t}": round(sum(x <= self.competence_at(t) for x in d) / len(d), 4)
                                  for t in marks}})
        return out

    def _state(self) -> dict[str, Any]:
        return {"last": self.last}

    def _load(self, state: dict[str, Any]) -> None:
        self.last = float(state["last"])
