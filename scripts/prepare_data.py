#!/usr/bin/env python
"""The seed's `python scripts/prepare_data.py ...` command: a thin wrapper over `curiosity-sft prepare`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from curiosity_sft.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
