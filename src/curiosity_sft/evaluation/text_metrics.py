"""BLEU and chrF of generated responses against the reference responses (sacrebleu).

sacrebleu's corpus scores are the standard, reproducible ones (its signature is stored with
them). BLEU is also given on the 0-1 scale because the seed states its target as "BLEU > 0.7".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sacrebleu


def bleu_chrf(outputs: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU (0-100 and 0-1) and chrF over aligned outputs and references."""
    if not outputs:
        return {"n": 0}
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(list(outputs), [list(references)])
    c = chrf.corpus_score(list(outputs), [list(references)])
    return {"bleu": b.score, "bleu_01": b.score / 100, "chrf": c.score, "n": len(outputs),
            "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}
