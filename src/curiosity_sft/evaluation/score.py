"""``score``: re-score saved generations without a model.

lm-evaluation-harness users re-score logged samples when a metric changes; this is the same for
``evaluate``'s ``samples.jsonl``. Each sample is joined by ``id`` to its example in ``--data``
(the file ``evaluate`` was given, which holds the references and the scoring metadata), scored
by the same scorers ``evaluate`` uses (``scoring.sample_record``), and written as the same
``results.json``: accuracy per source and overall, per task, and the GSM8K gate. A scorer change
is then auditable: re-score an old evaluation and diff the two ``samples.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curiosity_sft.config import SFTConfig
from curiosity_sft.data.schema import Example, iter_jsonl
from curiosity_sft.errors import DataError
from curiosity_sft.evaluation.eval_data import read_with_splits
from curiosity_sft.evaluation.gates import check_gates
from curiosity_sft.evaluation.outputs import file_sha256, write_evaluation_folder
from curiosity_sft.evaluation.scoring import accuracy_by_task, accuracy_table, sample_record, scorer_versions
from curiosity_sft.evaluation.tasks import task_of
from curiosity_sft.io import check_output_dir


def read_samples(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line, sample) for each line; every sample needs a string ``id`` and ``output``, once each
    (once per ``sample`` number, which ``--sampling deepseek`` gives each of a prompt's samples)."""
    seen: dict[tuple[str, Any], int] = {}
    out = []
    for line, rec in iter_jsonl(path):
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str) or not isinstance(rec.get("output"), str):
            raise DataError("a sample needs a string `id` and a string `output`", where=path, line=line,
                            fix="pass the samples.jsonl that `curiosity-sft evaluate` wrote")
        key = (rec["id"], rec.get("sample", 0))
        if key in seen:
            what = f"sample id `{rec['id']}`" + (f" (sample {key[1]})" if key[1] else "")
            raise DataError(f"{what} repeats (first on line {seen[key]})", where=path, line=line)
        seen[key] = line
        out.append((line, rec))
    if not out:
        raise DataError("no samples in file", where=path)
    return out


def score_samples(samples: str | Path, data: str | Path, output: str | Path | None = None, *,
                  config: SFTConfig | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Score every sample of ``samples`` against its example in ``data``; write ``output`` if given."""
    cfg = config or SFTConfig()
    out = check_output_dir(output, "score", overwrite=overwrite, inputs=[samples, data]) if output is not None else None
    rows = read_samples(samples)
    # every example of the file, whatever its split: the samples say which ones were evaluated
    examples: dict[str, Example] = {ex.id: ex for _, ex in read_with_splits(data)}
    records = []
    for line, s in rows:
        ex = examples.get(s["id"])
        if ex is None:
            raise DataError(f"sample id `{s['id']}` is not an example of {data}", where=samples, line=line,
                            fix="pass as --data the file `evaluate` was given for these samples")
        records.append(sample_record(ex, str(s.get("prompt", "")), s["output"], s.get("new_tokens"),
                                     s.get("max_new_tokens"), s.get("sample", 0), bool(s.get("thinking_cut"))))
    evaluated = [examples[s["id"]] for _, s in rows]
    results: dict[str, Any] = {
        "model": "(re-scored samples)", "samples": str(samples), "samples_sha256": file_sha256(Path(samples)),
        "data": str(data), "data_sha256": file_sha256(Path(data)), "examples": len(records), "tasks": ["accuracy"],
        "tasks_in_data": sorted({t for e in evaluated if (t := task_of(e))}), "scorers": scorer_versions(),
        "accuracy": accuracy_table(records), "accuracy_by_task": accuracy_by_task(records)}
    results["gates"] = [g.to_dict() for g in check_gates(results, cfg.gate_max_perplexity, cfg.gate_min_bleu,
                                                          cfg.gate_min_gsm8k_accuracy)]
    if out is not None:
        write_evaluation_folder(out, "score", results, records)
    return results
