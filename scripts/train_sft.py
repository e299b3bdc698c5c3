#!/usr/bin/env python
"""The seed's `python scripts/train_sft.py ...` command: a thin wrapper over `curiosity-sft train`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from curiosity_sft.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
