"""The planner counts the chunked vocabulary head (training/loss.py), not all the trained positions' logits."""

from __future__ import annotations

from curiosity_sft.planning.architectures import KNOWN
from curiosity_sft.planning.memory import GIB, Setting, estimate, head_bytes
from curiosity_sft.training.loss import chunk_rows

QWEN_1_5B = KNOWN["deepseek-ai/deepseek-r1-distill-qwen-1.5b"]


def test_head_memory_is_one_chunk_not_positions_times_vocabulary():
    v, d = QWEN_1_5B.vocab_size, QWEN_1_5B.hidden_size
    one_row = head_bytes(QWEN_1_5B, 2048, trains_head=True, cuda=True)
    eight_rows = head_bytes(QWEN_1_5B, 8 * 2048, trains_head=True, cuda=True)
    # more positions add only their fp32 hidden-state gradient, never another positions x vocabulary tensor
    assert eight_rows - one_row == 7 * 2048 * d * 4
    assert one_row < 2048 * v * 14 / 2  # the unchunked head held ~14 bytes x positions x vocabulary
    assert head_bytes(QWEN_1_5B, 2048, trains_head=False, cuda=False) == chunk_rows(v) * v * 8 + 2048 * d * 4
    full = estimate(QWEN_1_5B, Setting("full", 8, 4, True), 2048)
    assert full.parts["head"] == int(head_bytes(QWEN_1_5B, 8 * 2048, True, True))
    assert full.parts["head"] < 2.5 * GIB  # was 32 GiB of logits, log-softmax and gradient at 8 x 2048
