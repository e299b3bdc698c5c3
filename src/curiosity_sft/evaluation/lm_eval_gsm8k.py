"""lm-evaluation-harness's own GSM8K verdict on an output, to check ours against (needs ``lm-eval``).

Nothing is copied from the harness: its installed ``tasks/gsm8k/gsm8k.yaml`` is read, its two
filter pipelines (``strict-match``, ``flexible-extract``) are built by its own
``build_filter_ensemble`` and its ``exact_match`` metric is called with the YAML's arguments, so
an lm-eval release that changes the task changes this comparison with it. Used by
``tests/unit/test_scorers.py`` and ``bench/bench_lm_eval_gsm8k.py`` (docs/EVALUATION.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from importlib.metadata import version
from typing import Any

FILTERS = ("strict-match", "flexible-extract")


@dataclass
class Verdict:
    extracted: str | None  # None: lm-eval's "[invalid]"
    correct: bool


class LmEvalGSM8K:
    """The ``gsm8k`` task's filters and metric, as the installed lm-eval defines them."""

    def __init__(self) -> None:
        import yaml
        from lm_eval.filters import build_filter_ensemble

        text = (resources.files("lm_eval") / "tasks" / "gsm8k" / "gsm8k.yaml").read_text(encoding="utf-8")
        self.config: dict[str, Any] = yaml.safe_load(text)
        self.version = version("lm-eval")
        self.task_version = self.config.get("metadata", {}).get("version")
        self.filters = {f["name"]: build_filter_ensemble(f["name"], [(s["function"], {k: v for k, v in s.items()
                                                                                     if k != "function"})
                                                                   for s in f["filter"]])
                        for f in self.config["filter_list"]}
        (metric,) = [m for m in self.config["metric_list"] if m["metric"] == "exact_match"]
        self.metric_kwargs = {k: v for k, v in metric.items() if k not in ("metric", "aggregation", "higher_is_better")}
        self.until: list[str] = list(self.config.get("generation_kwargs", {}).get("until", []))

    def stop_at_until(self, output: str) -> str:
        """The output as lm-eval's generation would have returned it: cut at the first stop string."""
        cut = min((i for s in self.until if (i := output.find(s)) >= 0), default=len(output))
        return output[:cut]

    def _extract(self, name: str, outputs: list[str]) -> list[str]:
        from lm_eval.api.instance import Instance

        instances = [Instance("generate_until", {}, ("", {}), i) for i in range(len(outputs))]
        for inst, out in zip(instances, outputs, strict=True):
            inst.resps = [out]
        self.filters[name].apply(instances)
        return [inst.filtered_resps[name] for inst in instances]

    def verdicts(self, outputs: list[str], answers: list[str]) -> dict[str, list[Verdict]]:
        """{filter name: one Verdict per output}; ``answers`` are GSM8K final answers (``72``)."""
        from lm_eval.api.metrics import exact_match_hf_evaluate

        targets = [f"#### {a}" for a in answers]  # doc_to_target is the whole solution; its regexes keep the number
        out: dict[str, list[Verdict]] = {}
        for name in FILTERS:
            got = self._extract(name, [self.stop_at_until(o) for o in outputs])
            out[name] = [Verdict(None if g == "[invalid]" else g,
                                 bool(exact_match_hf_evaluate([g], [t], **self.metric_kwargs)["exact_match"]))
                         for g, t in zip(got, targets, strict=True)]
        return out


# Why our extraction and lm-eval's disagree, in the order the checks are made (first match wins).
# Each kind is documented in docs/EVALUATION.md with an example, and pinned in tests/unit/test_scorers.py.
UNTIL = ("`Question:` after the answer: lm-eval's generation stops there", r"Question:")
STRICT_KINDS: tuple[tuple[str, str], ...] = (
    UNTIL,
    ("<think> block", r"<think>|</think>"),
    ("`#### $18`: currency sign after ####", r"####\s*\\?\$"),
    ("`####18`: no space after ####", r"####(?=-?\d)"),
    ("`####  18`: several spaces after ####", r"####\s{2,}-?\d"),
    ("`#### 3/4`: a fraction after ####", r"####\s*-?[\d.,]*\d\s*/\s*\d"),
)
FLEXIBLE_KINDS: tuple[tuple[str, str], ...] = (
    UNTIL,
    ("<think> block", r"<think>|</think>"),
    ("a final \\boxed{} before later numbers", r"\\boxed\{"),
    ("`3/4`: a fraction is one number", r"-?\d[\d,]*(?:\.\d+)?\s*/\s*\d+"),
)


def difference_kind(output: str, strict: bool, ours: str | None, theirs: str | None) -> str:
    """The documented reason ``ours`` and ``theirs`` (the two extractions) differ on ``output``."""
    import re

    for name, pattern in STRICT_KINDS if strict else FLEXIBLE_KINDS:
        if re.search(pattern, output):
            return name
    if theirs is not None and ours is not None and re.fullmatch(r"-?[\d,]*\.\d*0+", theirs.strip(".$")):
        return "`18.00`: trailing zeros (lm-eval compares strings)"
    if theirs is not None and not re.search(r"\d", theirs):
        return "lm-eval's match has no digit (`...`, `.,`)"
    if theirs is not None and re.search(r"\.{2,}$|[.,]$", theirs) and theirs.rstrip(".,") != theirs:
        return "lm-eval keeps trailing punctuation (`8...`, `8,`)"
    if theirs is not None and theirs.startswith("-") and ours is not None and not ours.startswith("-"):
        return "`3-4`: a hyphen read as a minus sign by lm-eval"
    if theirs is not None and ours is not None and theirs.lstrip("-$").replace(",", "") != ours.lstrip("-"):
        return "digits inside a word or unit (`x2`, `5th`, `10am`): lm-eval reads them"
    return "other"
