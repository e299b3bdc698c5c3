"""The chunked vocabulary head equals the plain one (loss and every gradient) and never holds all logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from curiosity_sft.training.batching import IGNORE, collate, encode_all
from curiosity_sft.training.loss import backbone_and_head, chunk_rows, head_loss, sum_token_loss


def _plain(head: torch.nn.Module, h: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(h).float(), t, reduction="sum")


def _loss_and_grads(fn, head, h, t):
    h = h.detach().clone().requires_grad_(True)
    head.zero_grad(set_to_none=True)
    loss = fn(head, h, t)
    (loss * 0.37).backward()  # a scale, as the step's 1/n_tokens is: backward must apply it
    return loss.detach(), h.grad, {n: p.grad.clone() for n, p in head.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("rows", [7, 64, 1000])  # not dividing the positions, one chunk, more than all
def test_chunked_head_equals_plain_head_loss_and_gradients(bias, rows):
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(32, 301, bias=bias)
    h = torch.randn(50, 32, generator=g)
    t = torch.randint(0, 301, (50,), generator=g)
    want = _loss_and_grads(_plain, head, h, t)
    got = _loss_and_grads(lambda m, x, y: head_loss(m, x, y, rows=rows), head, h, t)
    torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-7)
    for name in want[2]:
        torch.testing.assert_close(got[2][name], want[2][name], rtol=1e-5, atol=1e-7)


def test_wrapped_head_takes_the_checkpointed_loop_and_equals_plain():
    """A head that is not a plain Linear (LoRA on lm_head) must go through its own forward."""

    class Scaled(torch.nn.Module):  # stands in for a LoRA-wrapped head: its forward is not weight @ x
        def __init__(self) -> None:
            super().__init__()
            self.inner = torch.nn.Linear(16, 97, bias=False)
            self.weight = self.inner.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2.0 * self.inner(x)

    g = torch.Generator().manual_seed(1)
    head = Scaled()
    h, t = torch.randn(40, 16, generator=g), torch.randint(0, 97, (40,), generator=g)
    want = _loss_and_grads(_plain, head, h, t)
    got = _loss_and_grads(lambda m, x, y: head_loss(m, x, y, rows=9), head, h, t)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])
    torch.testing.assert_close(got[2]["weight"], want[2]["weight"])
    with torch.no_grad():
        torch.testing.assert_close(head_loss(head, h, t, rows=9), want[0])


def test_tiny_model_loss_and_every_gradient_equal_the_full_logits_reference(tok, tiny_model):
    """End to end through the real model (tied embeddings: head and embedding share one weight)."""
    from curiosity_sft.data.schema import Example, chat

    exs = [Example(id=str(i), source="s", messages=chat(f"What is {i} + {i}?", f"It is {2 * i}. " * (i + 1)))
           for i in range(6)]
    enc = encode_all(exs, tok, 256).kept
    b = collate([enc[:3], enc[3:]], tok.pad_token_id)

    def reference(model, batch):
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits
        t = batch.labels[:, 1:]
        keep = t != IGNORE
        return F.cross_entropy(logits[:, :-1][keep].float(), t[keep], reduction="sum"), int(keep.sum())

    results = []
    for fn in (reference, sum_token_loss):
        tiny_model.zero_grad(set_to_none=True)
        s, n = fn(tiny_model, b)
        (s / n).backward()
        results.append((s.detach(), n, {k: p.grad.clone() for k, p in tiny_model.named_parameters()}))
    (ref, n_ref, g_ref), (got, n_got, g_got) = results
    assert n_got == n_ref and tiny_model.config.tie_word_embeddings
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-5)
    for k in g_ref:
        torch.testing.assert_close(g_got[k], g_ref[k], rtol=1e-4, atol=1e-7, msg=k)


def test_lora_on_the_head_trains_through_its_adapter(tok, tiny_model):
    """LoRA on lm_head: the chunked loop must go through the adapter, whose gradients must equal the reference's."""
    from curiosity_sft.models import apply_lora

    model = apply_lora(tiny_model, 4, 8, 0.0, ["lm_head", "q_proj"])
    _, head = backbone_and_head(model)
    assert type(head) is not torch.nn.Linear
    for n, p in model.named_parameters():
        if "lora_B" in n:  # B starts at zero; make the adapters matter
            torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(4)
    h = torch.randn(30, model.config.hidden_size, generator=g)
    t = torch.randint(0, model.config.vocab_size, (30,), generator=g)
    want = _loss_and_grads(_plain, head, h, t)
    got = _loss_and_grads(lambda m, x, y: head_loss(m, x, y, rows=8), head, h, t)
    torch.testing.assert_close(got[0], want[0])
    lora = [k for k in want[2] if "lora" in k]
    assert lora
    for k in lora:
        torch.testing.assert_close(got[2][k], want[2][k], msg=k)


def test_bf16_autocast_matches_the_plain_bf16_head():
    g = torch.Generator().manual_seed(2)
    head = torch.nn.Linear(64, 503, bias=False)
    h, t = torch.randn(80, 64, generator=g), torch.randint(0, 503, (80,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = _loss_and_grads(_plain, head, h, t)
        got = _loss_and_grads(lambda m, x, y: head_loss(m, x, y, rows=16), head, h, t)
    assert got[1].dtype == torch.float32 and got[2]["weight"].dtype == torch.float32  # fp32 masters' grads
    torch.testing.assert_close(got[0], want[0], rtol=2e-3, atol=0)
    torch.testing.assert_close(got[1], want[1], rtol=0.02, atol=2e-3)
    torch.testing.assert_close(got[2]["weight"], want[2]["weight"], rtol=0.02, atol=2e-3)


def test_no_labelled_position_gives_zero_loss_and_zero_gradients():
    head = torch.nn.Linear(8, 11)
    h = torch.zeros(0, 8, requires_grad=True)
    loss = head_loss(head, h, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert float(loss) == 0.0 and float(head.weight.grad.abs().sum()) == 0.0


class _Watch(TorchDispatchMode):
    """Records the largest tensor any operation creates and the matmul FLOPs (in-place ones included,
    which torch's FlopCounterMode does not count)."""

    MATMULS = {"mm": (0, 1), "addmm": (1, 2), "addmm_": (1, 2)}

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.MATMULS:
            i, j = self.MATMULS[name]
            (m, k), n = args[i].shape, args[j].shape[1]
            self.flops += 2 * m * k * n
        out = func(*args, **(kwargs or {}))
        for x in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(x, torch.Tensor):
                self.largest = max(self.largest, x.numel())
        return out


def test_all_logits_are_never_materialised_and_the_head_costs_three_matmuls():
    g = torch.Generator().manual_seed(3)
    positions, vocab, d = 512, 4096, 32
    head = torch.nn.Linear(d, vocab, bias=False)
    h = torch.randn(positions, d, generator=g, requires_grad=True)
    t = torch.randint(0, vocab, (positions,), generator=g)
    rows = 64
    with _Watch() as seen:
        head_loss(head, h, t, rows=rows).backward()
    assert seen.largest <= max(rows * vocab, vocab * d) < positions * vocab
    # forward logits + the two gradient matmuls, as the plain head: no recomputation
    assert seen.flops == 3 * 2 * positions * vocab * d
    with torch.no_grad(), _Watch() as fwd:
        head_loss(head, h, t, rows=rows)
    assert fwd.flops == 2 * positions * vocab * d  # validation pays for no gradient
    with _Watch() as plain:
        _plain(head, h, t).backward()
    assert plain.flops == seen.flops and plain.largest == positions * vocab  # what the chunks avoid


def test_chunk_size_bounds_the_logits_tile():
    assert chunk_rows(49152) == (64 << 20) // (4 * 49152)
    assert chunk_rows(151936) * 151936 * 4 <= 64 << 20
    assert chunk_rows(10**12) == 1
    # a trained head weight: chunks of at least half the hidden size (Qwen-1.5B: 768 positions)
    assert chunk_rows(151936, 1536) == 768 and chunk_rows(49152, 576) == chunk_rows(49152)


def test_backbone_and_head_through_peft(tiny_model):
    from curiosity_sft.models import apply_lora

    model = apply_lora(tiny_model, 4, 8, 0.0, "all-linear")
    decoder, head = backbone_and_head(model)
    assert type(head) is torch.nn.Linear and hasattr(decoder, "layers")


def test_a_second_backward_through_the_chunked_head_fails_loudly():
    """Its gradients are scaled in place; reusing them would silently double the update."""
    head = torch.nn.Linear(8, 13)
    h = torch.randn(5, 8, requires_grad=True)
    loss = head_loss(head, h, torch.arange(5))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward twice"):
        loss.backward()


def test_a_zero3_partitioned_head_is_called_once_per_micro_batch():
    """ZeRO-3 gathers the head's weight in a collective forward hook: chunk counts per rank would deadlock."""
    head = torch.nn.Linear(8, 50, bias=False)
    head.weight.ds_id = 0  # what DeepSpeed ZeRO-3 marks its partitioned parameters with
    calls = []
    head.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    h = torch.randn(30, 8, requires_grad=True)
    t = torch.randint(0, 50, (30,))
    loss = head_loss(head, h, t, rows=7)
    loss.backward()
    assert calls == [30]
    torch.testing.assert_close(loss, _plain(head, h.detach(), t))
