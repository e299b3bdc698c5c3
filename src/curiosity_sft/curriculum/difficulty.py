"""Model-based difficulty: the base model's mean per-token loss on each example, computed once.

The loss is the training loss itself (``loss.sum_token_loss``) on the examples as training
encodes and collates them (``batching``), so "hard" means exactly what the optimizer will see.
The decoder runs once per length-grouped batch; the loss is then taken row by row on those
hidden states (``_DecoderOutput``), because ``sum_token_loss`` sums over a whole batch and a
per-example value must not come from a second definition of the loss.

The result is cached under ``$CURIOSITY_SFT_CACHE/difficulty/`` by a fingerprint of the model's
weights and of the encoded examples, so a resumed or repeated run does not pay for it again and
a changed model, tokenizer, template or data set never reuses stale values.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from curiosity_sft.config import SFTConfig
from curiosity_sft.errors import UserError
from curiosity_sft.io import atomic_write_json
from curiosity_sft.models import cache_dir, load_model, load_tokenizer
from curiosity_sft.training.batching import Batch, Encoded, collate, plan_epoch
from curiosity_sft.training.loss import backbone_and_head, sum_token_loss

log = logging.getLogger(__name__)


class _DecoderOutput:
    """What ``sum_token_loss`` needs of a model, for one row whose decoder pass is already done:
    a decoder that returns those hidden states, and the model's real output head."""

    def __init__(self, hidden: torch.Tensor, head: torch.nn.Module) -> None:
        self._hidden, self._head = hidden, head

    def get_decoder(self) -> Any:
        return lambda **_: SimpleNamespace(last_hidden_state=self._hidden)

    def get_output_embeddings(self) -> torch.nn.Module:
        return self._head


def data_fingerprint(encoded: Sequence[Encoded]) -> str:
    """SHA-256 of every example's token ids and labels, in order (tokenizer and template included)."""
    h = hashlib.sha256()
    for e in encoded:
        h.update(json.dumps([e.input_ids, e.labels]).encode())
    return h.hexdigest()


@torch.no_grad()
def example_losses(model: torch.nn.Module, encoded: Sequence[Encoded], pad_id: int, batch_size: int = 16,
                   show_progress: bool = True) -> list[float]:
    """Mean next-token loss over each example's trained tokens, in the order given."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    lengths = [len(e.input_ids) for e in encoded]
    plan = plan_epoch(lengths, list(range(len(encoded))), batch_size, False, max(lengths), group_by_length=True)
    decoder, head = backbone_and_head(model)
    out = [0.0] * len(encoded)
    columns = (TextColumn("[bold]difficulty"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=False) as progress:
        task = progress.add_task("difficulty", total=len(encoded))
        for mb in plan:
            idx = [row[0] for row in mb]
            b = collate([[encoded[i]] for i in idx], pad_id).to(device)
            hidden = decoder(input_ids=b.input_ids, position_ids=b.position_ids, use_cache=False).last_hidden_state
            for r, i in enumerate(idx):
                n = b.row_real[r]
                row = Batch(b.input_ids[r:r + 1, :n], b.labels[r:r + 1, :n], b.position_ids[r:r + 1, :n], (n,))
                s, k = sum_token_loss(_DecoderOutput(hidden[r:r + 1, :n], head), row)  # type: ignore[arg-type]
                out[i] = float(s) / max(k, 1)
            progress.advance(task, len(idx))
    model.train(was_training)
    return out


def cached_example_losses(model: torch.nn.Module, encoded: Sequence[Encoded], pad_id: int, batch_size: int = 16,
                          show_progress: bool = True, cache: Path | None = None) -> list[float]:
    """``example_losses`` of the training sequences, from the cache when it has them."""
    # The evaluation's fingerprint, so there is one notion of "the same model"; imported here, as
    # evaluation sits downstream of training.
    from curiosity_sft.evaluation.evaluate import model_fingerprint

    model_fp, data_fp = model_fingerprint(model), data_fingerprint(encoded)
    path = (cache or cache_dir()) / "difficulty" / f"{model_fp[:16]}-{data_fp[:16]}.json"
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
            if saved["model"] == model_fp and saved["data"] == data_fp and len(saved["losses"]) == len(encoded):
                log.info("model difficulty of %d examples read from %s", len(encoded), path)
                return [float(x) for x in saved["losses"]]
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
        log.warning("model difficulty cache %s is unreadable or stale: computing again", path)
    losses = example_losses(model, encoded, pad_id, batch_size, show_progress)
    atomic_write_json(path, {"model": model_fp, "data": data_fp, "examples": len(encoded), "losses": losses})
    log.info("model difficulty of %d examples cached in %s", len(encoded), path)
    return losses


def model_difficulty(cfg: SFTConfig, encoded: Sequence[Encoded], pad_id: int, device: torch.device | str = "cpu",
                     show_progress: bool = True) -> list[float]:
    """The per-example losses ``curriculum.difficulty: model | mix`` ranks by, on the run's own encodings.

    Scored by ``curriculum.difficulty_model``, which must share the run's tokenizer (the sequences
    are the ones training sees), or by the run's own base model (a fresh model at the run's
    ``hidden_dim``/``num_layers`` when those are set, with a warning: an untrained model's loss
    mostly measures token rarity). The model is loaded for this pass only.
    """
    name = cfg.curriculum.difficulty_model or cfg.model_name
    own = cfg.curriculum.difficulty_model is None
    if own and cfg.hidden_dim is not None:
        log.warning("curriculum.difficulty=%s scores examples with the run's freshly initialised model, whose loss "
                    "reflects token frequency more than difficulty; set curriculum.difficulty_model to a trained "
                    "model", cfg.curriculum.difficulty)
    if not own and load_tokenizer(name).get_vocab() != load_tokenizer(cfg.model_name).get_vocab():
        raise UserError(f"curriculum.difficulty_model {name} has another tokenizer than model_name {cfg.model_name}",
                        where="curriculum.difficulty_model",
                        fix="use a model of the same family (same tokenizer), or leave it null to score with the base")
    model = load_model(name, hidden_dim=cfg.hidden_dim if own else None, num_layers=cfg.num_layers if own else None,
                       seed=cfg.seed).to(device)
    return cached_example_losses(model, encoded, pad_id, cfg.eval_batch_size, show_progress)
