"""Everything ``evaluate`` can check before it loads a model: a bad input costs seconds, not a model load.

Also where evaluation settings come from: ``max_length`` is the checkpoint's own (its run's
``config.yaml``), so perplexity is measured on exactly the examples training validated on and
"evaluation perplexity = exp(training eval loss)" holds; an explicit ``--max-length`` wins.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curiosity_sft.errors import UserError

log = logging.getLogger(__name__)

MODEL_FILE_SUFFIXES = (".pt", ".gguf", ".safetensors")


def check_model_file(spec: str) -> None:
    """A ``--model`` that names a file must exist, and a ``.pt`` must be a whole PyTorch archive.

    ``torch.save`` writes a zip whose directory sits at the end of the file, so a truncated or
    overwritten checkpoint is recognised from the directory alone, without reading the weights.
    """
    p = Path(spec).expanduser()
    if p.suffix in MODEL_FILE_SUFFIXES and not p.exists():
        raise UserError("model file not found", where=spec, fix="pass RUN/latest.pt, a checkpoint-N folder or a model name")
    if p.suffix != ".pt" or p.is_dir():
        return
    try:
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"not a readable PyTorch checkpoint ({e}): truncated or corrupt", where=spec,
                        fix="pass an intact latest.pt (re-export it, or evaluate a checkpoint-N folder of the run)") from None
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        raise UserError("not a PyTorch checkpoint (no data.pkl inside)", where=spec,
                        fix="pass a latest.pt written by `curiosity-sft train`")


def is_pytorch_read_error(err: BaseException) -> bool:
    """An error raised while ``torch.load`` read the file (a damaged pickle or record inside an
    intact zip), as opposed to a bug after loading: decided by where it was raised."""
    import pickle
    import traceback

    if isinstance(err, (pickle.UnpicklingError, EOFError, zipfile.BadZipFile)):
        return True
    frames = traceback.extract_tb(err.__traceback__)
    return isinstance(err, (RuntimeError, KeyError, ValueError)) and any(
        Path(f.filename).name == "serialization.py" and "torch" in Path(f.filename).parts for f in frames)


def read_baseline(path: str | Path) -> dict[str, Any]:
    """``--compare``: another evaluation's ``results.json``, checked before any work."""
    p = Path(path)
    if p.is_dir() and (p / "results.json").is_file():
        p = p / "results.json"
    if not p.is_file():
        raise UserError("--compare file not found", where=path, fix="pass the results.json of an earlier evaluation")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"--compare is not valid JSON ({e})", where=p, fix="pass the results.json of an earlier evaluation") from None
    if not isinstance(data, dict) or not ({"perplexity", "accuracy", "bleu"} & set(data)) or "gates" not in data:
        raise UserError("--compare is not an evaluation's results.json (no metrics or gates)", where=p,
                        fix="pass the results.json that `curiosity-sft evaluate` or `score` wrote")
    return data


@dataclass
class Inherited:
    """Settings taken from the checkpoint's training run, and the file they came from."""

    max_length: int | None = None
    model_name: str | None = None
    config_path: Path | None = None


def run_config_path(spec: str) -> Path | None:
    """The ``config.yaml`` of the run a ``--model`` comes from: beside ``latest.pt``, in a run or
    ``checkpoint-N`` folder, or one level up from a run's ``hf_model/``/``adapter/``."""
    p = Path(spec).expanduser()
    if not p.exists():
        return None
    for folder in ([p] if p.is_dir() else []) + [p.parent]:
        is_run = (folder / "latest.pt").is_file() or (folder / "trainer_state.json").is_file()
        if is_run and (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def inherited_settings(spec: str) -> Inherited:
    """``max_length`` and ``model_name`` from the run's config, read as plain YAML so a run written
    by another version (other keys) still gives them."""
    import yaml

    path = run_config_path(spec)
    if path is None:
        return Inherited()
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        cfg = None
    if not isinstance(cfg, dict):
        log.warning("%s is not a readable run config; nothing inherited from it", path)
        return Inherited()
    ml = cfg.get("max_length")
    return Inherited(ml if isinstance(ml, int) and not isinstance(ml, bool) and ml > 0 else None,
                     cfg.get("model_name") if isinstance(cfg.get("model_name"), str) else None, path)


def resolve_max_length(explicit: int | None, inherited: Inherited, default: int, default_from: str) -> tuple[int, str]:
    """(max_length, where it came from): the flag, else the checkpoint's run, else the config/default."""
    if explicit is not None:
        if explicit < 1:
            raise UserError(f"--max-length must be a positive number of tokens, got {explicit}", where="--max-length")
        return explicit, "--max-length"
    if inherited.max_length is not None:
        return inherited.max_length, str(inherited.config_path)
    return default, default_from
