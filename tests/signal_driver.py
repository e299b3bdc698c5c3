"""`curiosity-sft` as a launched process that signals itself at a chosen moment (tests only).

Launchers (torchrun, accelerate launch) start a script in each process, so the moment is chosen
by environment: ``SIGNAL_AT="validation_loss:1:SIGTERM:1"`` makes process (rank) 1 send itself
SIGTERM as its first validation starts (``Recipe.save`` for a checkpoint, ``StepRunner.run`` for a
step). ``PID_DIR`` collects each process's pid (``rank<R>``), so a test can signal one process
from outside, and whether it built its model on the meta device (``meta<R>``).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from curiosity_sft.cli import main
from curiosity_sft.training import loop
from curiosity_sft.training.step import StepRunner

rank = int(os.environ.get("RANK", "0"))
pid_dir = os.environ.get("PID_DIR")
if pid_dir:
    Path(pid_dir, f"rank{rank}").write_text(str(os.getpid()))
    real_build = loop.build_model

    def build_model(*a, **k):  # type: ignore[no-untyped-def]
        Path(pid_dir, f"meta{rank}").write_text(str(k.get("on_meta", False)))
        return real_build(*a, **k)

    loop.build_model = build_model

spec = os.environ.get("SIGNAL_AT")
if spec:
    name, nth, signame, who = spec.split(":")
    owner = {"validation_loss": loop, "save": loop.Recipe, "run": StepRunner}[name]
    real = getattr(owner, name)
    calls = [0]

    def wrapped(*a, **k):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if calls[0] == int(nth) and rank == int(who):
            os.kill(os.getpid(), getattr(signal, signame))
        return real(*a, **k)

    setattr(owner, name, wrapped)

sys.exit(main(sys.argv[1:]))
