"""The curiosity sampler: a bandit picks the bucket of each step, rewarded by learning progress.

Learning progress of a bucket is the recent relative decrease of its loss on a small held-out
slice of it (its probe), measured every ``probe_every`` steps on every bucket; optionally the
decrease of its training loss is averaged in. Progress is rescaled to [-1, 1] by the recent
history (Graves et al. 2017) and fed to Exp3.S for the buckets played since the last
measurement; the sampling probabilities are then smoothed, and never fall under the floor.

Exp3.S rather than EXP3 with Online Data Mixing's exploration rate (Albalak et al. 2023): ODM
uses its decaying exploration rate as the softmax temperature too, which suits its rewards (raw
training losses of a few nats) but leaves rewards in [-1, 1] almost without effect: on the
synthetic problem of tests/unit/test_curriculum_bandit.py (two buckets, one learning) an ODM
variant tried while building this still sampled the learning bucket at 0.53 after 400 steps,
where Exp3.S reached 0.84.

The loop's part (see docs/CURRICULUM.md): before the step that has ``step`` steps before it,
``if sampler.wants_probe(step)``, measure the mean token loss of every probe and call
``observe(step, losses)``; after a step, ``observe_train(step, loss)``. The losses must be the
same on every process (all-reduced, as ``validation_loss`` returns them), so every process
updates the bandit identically.
"""

from __future__ import annotations

import random
from typing import Any

from curiosity_sft.curriculum.bandit import Exp3S, RewardScaler
from curiosity_sft.curriculum.buckets import make_buckets
from curiosity_sft.curriculum.data import CurriculumData
from curiosity_sft.curriculum.samplers import Rows, Sampler
from curiosity_sft.curriculum.streams import CycleStream
from curiosity_sft.errors import UserError


class CuriositySampler(Sampler):
    """Buckets of source x difficulty band; each step is drawn from one bucket chosen by the bandit."""

    strategy = "curiosity"

    def __init__(self, data: CurriculumData, global_batch: int, packing: bool, max_length: int, seed: int,
                 total_steps: int, bands: int = 3, reward: str = "heldout",
                 probe_examples: int = 8, probe_every: int = 10, floor: float = 0.2, lr: float = 0.05,
                 forget: float = 0.05, smoothing: float = 0.5, loss_smoothing: float = 0.5,
                 reward_window: int = 100) -> None:
        super().__init__(data, global_batch, packing, max_length, seed, total_steps)
        self.buckets = make_buckets(data, bands, probe_examples, seed)
        bare = [b.source for b in self.buckets if not b.probe]
        if bare:
            raise UserError(f"source `{bare[0]}` has a single training example: the curiosity sampler needs a "
                            "held-out one and a trained one in every source", where="curriculum.strategy",
                            fix="add examples to that source, drop it, or use another strategy")
        self.names = [b.name for b in self.buckets]
        self.k = len(self.buckets)
        self.probe_every, self.with_train = probe_every, reward == "heldout+train"
        self.smoothing, self.loss_smoothing = smoothing, loss_smoothing
        self.bandit = Exp3S(self.k, lr, forget, floor)
        self.scaler = RewardScaler(reward_window)
        self.streams = [CycleStream(b.train, seed, f"curiosity:{b.name}") for b in self.buckets]
        self._warn_small({b.name: b.train for b in self.buckets})
        self.probs = self.bandit.policy()
        self.plays = [0] * self.k
        self.last_bucket: int | None = None
        self.last_probe: int | None = None
        self.loss: list[float | None] = [None] * self.k  # latest held-out loss, as measured
        self.ema: list[float | None] = [None] * self.k  # smoothed held-out loss
        self.train_ema: list[float | None] = [None] * self.k  # smoothed training loss of the bucket's steps
        self.train_ref: list[float | None] = [None] * self.k  # train_ema at the previous measurement

    # --- the step ---
    def _next(self, step: int) -> Rows:
        u = random.Random(f"{self.seed}:curiosity:{step}").random()
        b, acc = self.k - 1, 0.0
        for i, p in enumerate(self.probs):
            acc += p
            if u < acc:
                b = i
                break
        self.plays[b] += 1
        self.last_bucket = b
        return self._fill(self.streams[b], self.global_batch)

    # --- feedback ---
    def wants_probe(self, step: int) -> bool:
        return step % self.probe_every == 0 and step != self.last_probe

    def probe_sets(self) -> dict[str, list[int]]:
        return {b.name: list(b.probe) for b in self.buckets}

    def held_out(self) -> set[int]:
        return {i for b in self.buckets for i in b.probe}

    def observe_train(self, step: int, loss: float) -> None:
        b = self.last_bucket
        if not self.with_train or b is None:
            return
        prev = self.train_ema[b]
        self.train_ema[b] = loss if prev is None else self.loss_smoothing * prev + (1 - self.loss_smoothing) * loss

    def observe(self, step: int, losses: dict[str, float]) -> None:
        missing = [n for n in self.names if n not in losses]
        if missing:
            raise ValueError(f"observe() needs the held-out loss of every bucket; missing {missing}")
        self.last_probe = step
        before = list(self.ema)
        for i, n in enumerate(self.names):
            x = float(losses[n])
            self.loss[i] = x
            self.ema[i] = x if before[i] is None else self.loss_smoothing * before[i] + (1 - self.loss_smoothing) * x
        progress: dict[int, float] = {}
        for i in range(self.k):
            prev, now = before[i], self.ema[i]
            if self.plays[i] == 0 or prev is None or now is None:
                continue
            progress[i] = (prev - now) / max(abs(prev), 1e-8)
            ref, cur = self.train_ref[i], self.train_ema[i]
            if self.with_train and ref is not None and cur is not None:
                progress[i] = 0.5 * (progress[i] + (ref - cur) / max(abs(ref), 1e-8))
        self.train_ref = list(self.train_ema)
        if progress:
            self.scaler.add(list(progress.values()))
            rewards = {i: self.scaler.scale(g) for i, g in progress.items()}
            self.bandit.update(rewards, self.plays, self.probs)
            fresh = self.bandit.policy()
            mixed = [self.smoothing * p + (1 - self.smoothing) * q for p, q in zip(self.probs, fresh, strict=True)]
            total = sum(mixed)
            self.probs = [p / total for p in mixed]
        self.plays = [0] * self.k

    # --- what the run shows ---
    def metrics(self) -> dict[str, float]:
        out = {f"curriculum/p/{n}": p for n, p in zip(self.names, self.probs, strict=True)}
        out.update({f"curriculum/loss/{n}": x for n, x in zip(self.names, self.loss, strict=True) if x is not None})
        return out

    def table(self) -> list[dict[str, Any]]:
        return [{"group": b.name, "examples": len(b.train), "probe": len(b.probe),
                 "tokens": sum(self.data.lengths[i] for i in b.train), "difficulty": f"{b.lo:.2f}-{b.hi:.2f}",
                 "p": round(p, 4)} for b, p in zip(self.buckets, self.probs, strict=True)]

    # --- resume ---
    def _state(self) -> dict[str, Any]:
        return {"buckets": self.names, "bandit": self.bandit.state_dict(), "probs": list(self.probs),
                "plays": list(self.plays), "last_bucket": self.last_bucket, "last_probe": self.last_probe,
                "loss": list(self.loss), "ema": list(self.ema), "train_ema": list(self.train_ema),
                "train_ref": list(self.train_ref), "history": list(self.scaler.history),
                "streams": [s.state_dict() for s in self.streams]}

    def _load(self, state: dict[str, Any]) -> None:
        if state["buckets"] != self.names:
            raise UserError("the checkpoint's curiosity buckets differ from this run's", where="curriculum",
                            fix="resume with the checkpoint's curriculum.curiosity_bands and curiosity_probe_examples")
        self.bandit.load_state_dict(state["bandit"])
        self.probs = [float(p) for p in state["probs"]]
        self.plays = [int(n) for n in state["plays"]]
        self.last_bucket, self.last_probe = state["last_bucket"], state["last_probe"]
        self.loss, self.ema = list(state["loss"]), list(state["ema"])
        self.train_ema, self.train_ref = list(state["train_ema"]), list(state["train_ref"])
        self.scaler.history = [float(x) for x in state["history"]]
        for s, st in zip(self.streams, state["streams"], strict=True):
            s.load_state_dict(st)
