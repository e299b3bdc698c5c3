"""Shared fixtures: the real SmolLM2 tokenizer (converted once into the cache) and tiny models.

Unit tests build 2-layer models of SmolLM2's architecture from a config (the seed's
hidden_dim/num_layers mode), so they run in seconds on CPU with the real tokenizer and chat template.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_RAW = ROOT.parent / "shared" / "data" / "raw"
os.environ.setdefault("CURIOSITY_SFT_CACHE", str(ROOT / ".cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY = {"model_name": "smollm2-135m-instruct", "hidden_dim": 64, "num_layers": 2}


def require(module: str):
    """``pytest.importorskip``, except for a module ``make test`` (and so CI) installs and names in
    CURIOSITY_SFT_TEST_REQUIRES: there a missing module is a failure, never a silent skip."""
    import importlib

    if module in os.environ.get("CURIOSITY_SFT_TEST_REQUIRES", "").split(","):
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture(scope="session")
def tok():
    from curiosity_sft.models import load_tokenizer

    return load_tokenizer("smollm2-135m-instruct")


@pytest.fixture
def tiny_model():
    from curiosity_sft.models import load_model

    return load_model(TINY["model_name"], hidden_dim=64, num_layers=2, seed=0)


@pytest.fixture(scope="session")
def shared_raw() -> Path:
    if not SHARED_RAW.is_dir():
        pytest.skip("../shared/data/raw is absent")
    return SHARED_RAW


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory) -> Path:
    """Small embedded raw data set, generated once per session."""
    from curiosity_sft.data.synthetic import write_raw_dataset

    out = tmp_path_factory.mktemp("raw")
    write_raw_dataset(out, seed=1, n_gsm8k=60, n_math=30, n_logic=30, n_test=12)
    return out


@pytest.fixture(scope="session")
def prepared(demo_raw, tmp_path_factory) -> Path:
    from curiosity_sft.data.prepare import prepare

    out = tmp_path_factory.mktemp("prepared") / "sft"
    prepare(demo_raw, out, val_ratio=0.1, seed=0, show_progress=False)
    return out
