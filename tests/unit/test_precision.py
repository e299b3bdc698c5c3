"""Precision on CPU from measured matmul rates: the decision, the cache, and the probe's hygiene."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from curiosity_sft.config import SFTConfig
from curiosity_sft.training import precision as prec
from curiosity_sft.training.precision import MatmulRates, choose_precision, cpu_rates

CPU = torch.device("cpu")
FAST_BF16 = MatmulRates(188.0, 882.0, 2)  # avx512_bf16 with AMX (the CI machine)
SLOW_BF16 = MatmulRates(114.0, 0.9, 2)  # no bf16 units
EQUAL_BF16 = MatmulRates(190.0, 200.0, 2)  # bf16 units but no matmul advantage worth the casts


@pytest.mark.parametrize("kw,rates,want", [
    ({}, FAST_BF16, torch.bfloat16),  # auto: measured fast bf16 -> bf16 autocast
    ({}, SLOW_BF16, None),  # auto: measured slow bf16 -> fp32
    ({}, EQUAL_BF16, None),  # not clearly faster -> fp32
    ({"precision": "bf16"}, SLOW_BF16, torch.bfloat16),  # asked for: honoured on CPU
    ({"bf16": True}, FAST_BF16, torch.bfloat16),  # the seed's flag, honoured on CPU
    ({"precision": "fp32"}, FAST_BF16, None),
    ({"precision": "fp16"}, FAST_BF16, None),  # fp16 on CPU trains in fp32, with a warning
    ({"fp16": True}, FAST_BF16, torch.bfloat16),  # the seed's fp16: true asks for mixed precision: read as auto
    ({"fp16": True}, SLOW_BF16, None),
])
def test_cpu_precision_follows_the_measurement(kw, rates, want):
    c = choose_precision(SFTConfig(**kw), CPU, rates=lambda: rates)
    assert c.dtype == want
    assert c.record()["matmul_gflops"]["bf16"] == rates.bf16_gflops  # the rates travel with the choice
    assert c.record()["precision"] == {None: "fp32", torch.bfloat16: "bf16"}[want]


def test_bf16_asked_on_a_slow_cpu_warns(caplog):
    with caplog.at_level(logging.WARNING):
        choose_precision(SFTConfig(precision="bf16"), CPU, rates=lambda: SLOW_BF16)
    assert "not clearly faster" in caplog.text


def test_mfu_peak_is_the_rate_of_the_precision_trained_in():
    assert FAST_BF16.rate_of(torch.bfloat16) == 882e9 and FAST_BF16.rate_of(None) == 188e9


@pytest.fixture
def quiet(monkeypatch):
    """A machine with nothing else running (the cache only keeps measurements taken on one)."""
    monkeypatch.setattr(prec.os, "getloadavg", lambda: (0.2, 0.2, 0.2))


def test_rates_are_measured_once_per_machine_then_cached(tmp_path, monkeypatch, quiet):
    calls = []

    def measure() -> MatmulRates:
        calls.append(1)
        return FAST_BF16

    first = cpu_rates(tmp_path, measure)
    second = cpu_rates(tmp_path, measure)
    assert len(calls) == 1 and first.source == "measured" and second.source == str(tmp_path / prec.CACHE_FILE)
    assert (second.fp32_gflops, second.bf16_gflops) == (188.0, 882.0)
    # another thread count (or CPU, or torch) is another machine as far as the rates go
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    cpu_rates(tmp_path, measure)
    assert len(calls) == 2 and len(json.loads((tmp_path / prec.CACHE_FILE).read_text())) == 2


def test_a_measurement_on_a_busy_machine_is_used_but_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(prec.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert cpu_rates(tmp_path, lambda: SLOW_BF16).bf16_gflops == SLOW_BF16.bf16_gflops
    assert not (tmp_path / prec.CACHE_FILE).exists()


def test_a_damaged_cache_is_measured_again(tmp_path, quiet):
    (tmp_path / prec.CACHE_FILE).write_text("{not json")
    assert cpu_rates(tmp_path, lambda: SLOW_BF16).source == "measured"
    assert cpu_rates(tmp_path, lambda: FAST_BF16).bf16_gflops == SLOW_BF16.bf16_gflops  # now cached


def test_the_probe_leaves_the_global_rng_alone(monkeypatch):
    """A past bug: the probe drew from the global generator and shifted dropout masks after a resume."""
    monkeypatch.setattr(prec, "PROBE_SIZE", 128)
    monkeypatch.setattr(prec, "PROBE_SECONDS", 0.01)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    r = prec.measure_rates()
    assert torch.equal(torch.get_rng_state(), before)
    assert r.fp32_gflops > 0 and r.bf16_gflops > 0 and r.threads == torch.get_num_threads()
