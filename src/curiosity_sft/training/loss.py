"""The one definition of the SFT loss, shared by training, validation and perplexity.

The loss is a *sum* over trained tokens; callers divide by the number of trained tokens in the
whole optimizer step (all accumulation micro-batches together), so splitting a global batch into
more, smaller micro-batches does not change the loss or the gradient.

Speed: the vocabulary projection is applied only at positions that carry a label. For SFT on
chat data most positions are prompt or padding, and for SmolLM2 the head is ~20% of the model's
FLOPs per token, so skipping it there is a large, exact saving that TRL's SFTTrainer does not make
(it computes full logits and masks afterwards).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from curiosity_sft.training.batching import IGNORE, Batch


def backbone_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The decoder stack and the output projection, through a PEFT wrapper if there is one.

    LoRA layers are injected into the decoder's modules, so calling the decoder directly still
    applies them.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def sum_token_loss(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
    """(sum of next-token cross-entropy over trained tokens, number of trained tokens)."""
    decoder, head = backbone_and_head(model)
    hidden = decoder(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).last_hidden_state
    targets = batch.labels[:, 1:]
    keep = targets != IGNORE
    h = hidden[:, :-1][keep]
    logits = head(h).float()
    loss = F.cross_entropy(logits, targets[keep], reduction="sum")
    return loss, int(keep.sum())
