"""SIGTERM and Ctrl-C (SIGINT): stop at the next step boundary with a checkpoint, then exit 0.

Clusters send SIGTERM before they kill a job (Slurm at preemption or time limit, Kubernetes on
eviction), and ``torchrun`` / ``accelerate launch`` pass a signal they receive on to every
worker. A handler that raised at once would leave the weights of step N with the data position
of step N's start (the interrupted logging, validation or save), or, under FSDP/ZeRO, save
nothing because the other ranks are inside a collective. So the handler only records the
request; the loop finishes the step it is in (its logging, validation and checkpoint included),
all ranks agree at that step boundary (a one-number all-reduce, so a signal that reached one
process stops all of them at the same step), and the checkpoint saved there holds weights and
data position of the same step.

Before training starts (loading, tokenizing) there is nothing to save, and a signal stops the run
at once. Once training runs, the third signal stops it at once without saving: one Ctrl-C in a
terminal reaches a worker twice under a launcher (from the terminal and from the launcher).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
FORCE_AFTER = 3


class Interrupted(KeyboardInterrupt):
    """Raised when a signal stops the run at once (before training, or on the third signal)."""

    def __init__(self, signame: str) -> None:
        super().__init__(signame)
        self.signame = signame


class StopSignals:
    """Installs the handlers for the duration of a run (main thread only) and restores the old ones."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.count = 0
        self.training = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    @property
    def requested(self) -> bool:
        return self.received is not None

    def start_training(self) -> None:
        """From here a signal waits for the step boundary."""
        self.training = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.count += 1
        if not self.training:
            raise Interrupted(name)
        if self.received is None:
            self.received = name
            log.warning("%s received: stopping after this step, with a checkpoint (signal %d more times to stop at "
                        "once without saving)", name, FORCE_AFTER - 1)
        elif self.count >= FORCE_AFTER:
            raise Interrupted(name)
