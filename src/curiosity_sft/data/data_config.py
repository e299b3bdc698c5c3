"""The data config: which files make which source, in what share, and how ``prepare`` filters.

One typed object (pydantic, unknown keys refused) loaded from YAML, like the run config in
``config.py``; an error names the key, the file and the line. Without a config every data file
under ``--input`` is read with its format detected and every source kept at its natural share.

```yaml
sources:
  - name: gsm8k
    paths: [gsm8k]                # files or folders, relative to --input
    weight: 2                     # target share of training tokens, relative to the other weights
  - name: math
    paths: [math/MATH_train.tar.gz, math/test.jsonl]
    max_examples: 5000            # cap before mixing
  - name: stories
    paths: [children_books]
    format: books                 # force a format instead of detecting it
  - name: web
    paths: [web]                  # a `web ingest` --output (newest complete snapshot) or one snapshot
    weight: 0.5
max_length: 1024
overflow: drop                    # or truncate
decontaminate: [evals/aime.jsonl]
```
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from curiosity_sft.config import read_yaml_mapping
from curiosity_sft.errors import ConfigError

Format = Literal["gsm8k", "math", "logic", "logic_rl", "books", "generic", "web"]


class SourceSpec(BaseModel):
    """One named source: its files, format and place in the mix."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the `source` label of its examples")
    paths: list[str] = Field(min_length=1, description="files or folders, relative to --input")
    format: Format | None = Field(None, description="force a format (default: detect per file)")
    split: Literal["auto", "train", "test"] = Field("auto", description="auto: test*/MATH test members are test")
    weight: float | None = Field(None, gt=0, description="target share of training tokens (relative)")
    max_examples: int | None = Field(None, gt=0, description="keep at most this many training examples")

    @field_validator("paths", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class DataConfig(BaseModel):
    """Everything ``prepare`` decides besides the input/output folders, seed and validation share."""

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceSpec] = Field(default_factory=list, description="empty: every file under --input")
    model: str | None = Field("smollm2-135m-instruct", description="tokenizer for length accounting (null: none)")
    max_length: int = Field(1024, gt=16, description="tokens per example, chat template included")
    overflow: Literal["drop", "truncate"] = Field("drop", description="what to do with longer examples")
    decontaminate: list[str] = Field(default_factory=list, description="extra evaluation files to decontaminate against")
    decontaminate_test_splits: bool = Field(True, description="also decontaminate against the test splits in the input")
    ngram: int = Field(13, gt=2, description="shared word n-gram length that counts as contamination")
    near_dup_threshold: float = Field(0.9, gt=0, le=1, description="MinHash Jaccard above which two examples are one")
    strip_calculator: bool = Field(True, description="remove GSM8K <<a*b=c>> calculator annotations")
    book_instructions: bool = Field(True, description="also make 'continue the story' chat examples from books")
    reasoning_format: Literal["auto", "plain", "think"] = Field(
        "auto", description="GSM8K/MATH/logic replies as plain solutions or <think> steps </think> + final answer "
                            "(auto: think when `model`'s chat template thinks; docs/DATA.md)")

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, v: list[SourceSpec]) -> list[SourceSpec]:
        names = [s.name for s in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique, `{dup[0]}` repeats (list all its paths in one entry)")
        return v


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Line of the deepest YAML node on ``loc`` (e.g. ``("sources", 1, "weight")``)."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            hit = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key]
            if not hit:
                break
            line, node = hit[0][0].start_mark.line + 1, hit[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


def explain(err: ValidationError, where: Path, root: yaml.Node | None) -> ConfigError:
    first = err.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(p) for p in loc) or "(data config)"
    line = _line_of(root, loc)
    if first["type"] == "extra_forbidden":
        model = SourceSpec if len(loc) > 1 and loc[0] == "sources" else DataConfig
        close = difflib.get_close_matches(str(loc[-1]), model.model_fields, n=1)
        return ConfigError(f"unknown key `{key}`", where=where, line=line,
                           fix=f"did you mean `{close[0]}`?" if close else "see docs/DATA.md")
    what = f"`{key}`: {first['msg'].removeprefix('Value error, ')}"
    if not isinstance(first.get("input"), dict | list):
        what += f" (got {first.get('input')!r})"
    return ConfigError(what, where=where, line=line)


def load_data_config(path: str | Path | None) -> DataConfig:
    """Read and validate a data config YAML; None gives the defaults."""
    if path is None:
        return DataConfig()
    p = Path(path)
    data, text = read_yaml_mapping(p, "data config", "pass an existing YAML file to --data-config")
    root = yaml.compose(text)
    try:
        return DataConfig(**data)
    except ValidationError as e:
        raise explain(e, p, root) from None
