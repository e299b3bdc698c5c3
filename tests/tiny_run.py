"""A small chat data set written straight to JSONL and a tiny-model training config, for training tests.

Training tests build their own data here rather than through `prepare`, so they exercise the
training engine alone and do not move when the data pipeline does.
"""

from __future__ import annotations

from pathlib import Path

from curiosity_sft.config import SFTConfig
from curiosity_sft.data.schema import Example, chat, write_examples


def write_data(folder: Path, n_train: int = 48, n_val: int = 8) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)

    def ex(i: int) -> Example:
        if i % 5 == 4:
            return Example(id=f"t{i}", source="books", text=f"Story {i}: the fox ran {i} miles " + "and rested. " * (i % 7))
        q = f"Tom has {i} apples and buys {i + 3} more. How many does he have?"
        a = f"He has {i} + {i + 3} = {2 * i + 3} apples." + " Let me check." * (i % 4) + f"\n#### {2 * i + 3}"
        return Example(id=f"c{i}", source="gsm8k", messages=chat(q, a))

    train, val = folder / "train.jsonl", folder / "val.jsonl"
    write_examples(train, [ex(i) for i in range(n_train)])
    write_examples(val, [ex(1000 + i) for i in range(n_val)])
    return train, val


def tiny_config(train: Path, val: Path | None, **kw: object) -> SFTConfig:
    base = dict(model_name="smollm2-135m-instruct", hidden_dim=64, num_layers=2, train_file=str(train),
                val_file=str(val) if val else None, batch_size=2, gradient_accumulation_steps=2, max_length=256,
                learning_rate=1e-3, logging_steps=1, save_steps=3, eval_steps=3, eval_batch_size=8,
                peft_enable=False, max_steps=6,
                # fp32 whatever the CPU: these tests hold fp32 invariants (equal loss curves to 2e-5, exact
                # resume); `precision: auto` would train in bf16 on a CPU whose bf16 matmuls are fast
                precision="fp32")
    base.update(kw)
    return SFTConfig(**base)


def signal_on_call(monkeypatch, owner: object, name: str, nth: int, sig: int) -> dict[str, int]:
    """Make ``owner.name`` send ``sig`` to this process on its ``nth`` call, just before doing its work:
    a signal that lands at a chosen moment (a forward pass, validation, a checkpoint save)."""
    import os

    real = getattr(owner, name)
    calls = {"n": 0}

    def wrapped(*a: object, **k: object) -> object:
        calls["n"] += 1
        if calls["n"] == nth:
            os.kill(os.getpid(), sig)
        return real(*a, **k)

    monkeypatch.setattr(owner, name, wrapped)
    return calls
