"""Labels token by token, EOS trained, packing exact, accumulation-invariant loss."""

import torch

from curiosity_sft.data.schema import Example, chat
from curiosity_sft.training.batching import IGNORE, collate, encode_all, pack_bins, plan_epoch
from curiosity_sft.training.loss import sum_token_loss


def ex(i, text=None):
    if text:
        return Example(id=f"t{i}", source="books", text=text)
    return Example(id=f"c{i}", source="gsm8k", messages=chat(f"What is {i} plus {i}?", f"It is {2 * i}.\n#### {2 * i}"))


def encode_one(example, tok):
    (e,) = encode_all([example], tok, 10_000).kept
    return e


def test_only_assistant_tokens_are_labelled_and_end_of_turn_is_trained(tok):
    e = encode_one(ex(3), tok)
    trained = tok.decode([t for t, lab in zip(e.input_ids, e.labels, strict=True) if lab != IGNORE])
    untrained = tok.decode([t for t, lab in zip(e.input_ids, e.labels, strict=True) if lab == IGNORE])
    assert trained == "It is 6.\n#### 6<|im_end|>\n"
    assert "What is 3 plus 3?" in untrained and "<|im_start|>assistant\n" in untrained
    # the pad token equals EOS here: masking by id would have hidden it
    assert tok.pad_token_id == tok.eos_token_id
    assert tok.eos_token_id in [t for t, lab in zip(e.input_ids, e.labels, strict=True) if lab != IGNORE]


def test_multi_turn_trains_every_assistant_turn(tok):
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    e = encode_one(Example(id="m", source="x", messages=msgs), tok)
    trained = tok.decode([t for t, lab in zip(e.input_ids, e.labels, strict=True) if lab != IGNORE])
    assert trained == "Hello!<|im_end|>\n4<|im_end|>\n"


def test_text_examples_train_every_token_and_end_with_eos(tok):
    e = encode_one(ex(0, "Once upon a time."), tok)
    assert e.labels == e.input_ids and e.input_ids[-1] == tok.eos_token_id


def test_over_length_examples_are_dropped_not_truncated(tok):
    res = encode_all([ex(1), ex(2, "word " * 400)], tok, max_length=64)
    assert res.dropped == {"too_long": 1} and len(res.kept) == 1


def test_pack_bins_respects_capacity_and_keeps_everything():
    lengths = [5, 9, 3, 7, 2, 8, 1]
    bins = pack_bins(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)


def test_plan_epoch_is_deterministic_and_covers_all():
    lengths = [10 + i % 7 for i in range(50)]
    order = list(range(50))
    for packing in (True, False):
        p1 = plan_epoch(lengths, order, 4, packing, 64, seed=3)
        assert p1 == plan_epoch(lengths, order, 4, packing, 64, seed=3)
        assert sorted(i for mb in p1 for row in mb for i in row) == order


def test_group_by_length_decides_whether_unpacked_batches_mix_lengths():
    lengths = [5, 50, 6, 49, 7, 48, 8, 47]
    order = list(range(8))
    grouped = plan_epoch(lengths, order, 2, False, 64, seed=1)
    mixed = plan_epoch(lengths, order, 2, False, 64, seed=1, group_by_length=False)
    spread = [max(lengths[r[0]] for r in mb) - min(lengths[r[0]] for r in mb) for mb in grouped]
    assert max(spread) <= 1  # similar lengths meet: little padding
    assert sorted([r[0] for r in mb] for mb in mixed) == [[0, 1], [2, 3], [4, 5], [6, 7]]  # the shuffled order kept
    assert sorted(i for mb in mixed for r in mb for i in r) == order


def test_packed_loss_equals_unpacked_loss(tok, tiny_model):
    """Golden invariant: no token attends across packed examples (block-diagonal mask from positions)."""
    enc = encode_all([ex(i) for i in range(5)] + [ex(9, "The cat sat on the mat and purred.")], tok, 256).kept
    with torch.no_grad():
        single = [sum_token_loss(tiny_model, collate([[e]], tok.pad_token_id)) for e in enc]
        packed = sum_token_loss(tiny_model, collate([enc[:4], enc[4:]], tok.pad_token_id))
        padded = sum_token_loss(tiny_model, collate([[e] for e in enc], tok.pad_token_id))
    total = sum(float(s) for s, _ in single)
    n = sum(k for _, k in single)
    assert packed[1] == padded[1] == n
    assert abs(float(packed[0]) - total) / total < 1e-5
    assert abs(float(padded[0]) - total) / total < 1e-5
