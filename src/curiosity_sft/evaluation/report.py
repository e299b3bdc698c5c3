"""``report.md`` and a self-contained ``report.html``: gates, metrics, plots and sample generations.

The HTML embeds its plots as base64 PNGs so it is one file that can be mailed or attached to a
pull request. Loss curves come from the run's TensorBoard event files (the same numbers
TensorBoard shows); metrics are drawn against their gate thresholds, and against the base
model's when a baseline evaluation was given.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

from curiosity_sft.evaluation.gates import Gate
from curiosity_sft.io import atomic_open

SAMPLES_PER_KIND = 2  # correct and wrong examples shown per source


def loss_curves(run_dir: Path | None) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} for the loss-like scalars in ``run_dir/runs`` (empty when there are none)."""
    if run_dir is None or not (run_dir / "runs").is_dir():
        return {}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for events in sorted({p.parent for p in (run_dir / "runs").rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            if "loss" in tag:
                curves[tag] += [(e.step, e.value) for e in acc.Scalars(tag)]
    return {t: sorted(dict(v).items()) for t, v in curves.items()}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(results: dict[str, Any], gates: list[Gate], baseline: dict[str, Any] | None,
          curves: dict[str, list[tuple[int, float]]]) -> dict[str, str]:
    """{title: base64 PNG}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    if curves:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for tag, pts in sorted(curves.items()):
            ax.plot([s for s, _ in pts], [v for _, v in pts], marker="." if len(pts) < 30 else None, label=tag)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.legend()
        ax.set_title("training and validation loss (TensorBoard)")
        out["Loss curves"] = _png(fig)
    measured = [g for g in gates if g.value is not None]
    if measured:
        fig, axes = plt.subplots(1, len(measured), figsize=(3.2 * len(measured), 3.2), squeeze=False)
        base_gates = {g["name"]: g for g in (baseline or {}).get("gates", [])}
        for ax, g in zip(axes[0], measured, strict=True):
            names, values = ["this model"], [g.value]
            if base_gates.get(g.name, {}).get("value") is not None:
                names, values = ["baseline", "this model"], [base_gates[g.name]["value"], g.value]
            colors = ["#999999"] * (len(values) - 1) + ["#2a9d2a" if g.status == "pass" else "#d03030"]
            ax.bar(names, values, color=colors)
            ax.axhline(g.threshold, color="black", linestyle="--", label=f"gate {g.op} {g.threshold:g}")
            ax.set_title(g.name)
            ax.legend(fontsize=8)
        fig.tight_layout()
        out["Metrics against their gates"] = _png(fig)
    acc = results.get("accuracy", {})
    if baseline and acc:
        srcs = [s for s in acc if s != "overall"]
        fig, ax = plt.subplots(figsize=(1.6 * len(srcs) + 2, 3.2))
        x = range(len(srcs))
        ax.bar([i - 0.2 for i in x], [baseline.get("accuracy", {}).get(s, {}).get("accuracy", 0) for s in srcs],
               width=0.4, label="baseline", color="#999999")
        ax.bar([i + 0.2 for i in x], [acc[s]["accuracy"] for s in srcs], width=0.4, label="this model", color="#3060c0")
        ax.set_xticks(list(x), srcs)
        ax.set_ylabel("accuracy")
        ax.legend()
        ax.set_title("accuracy per source: baseline vs this model")
        out["Baseline vs this model"] = _png(fig)
    return out


def metric_rows(results: dict[str, Any], baseline: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(metric, value, baseline value) for every headline number."""
    def fmt(r: dict[str, Any] | None, *keys: str) -> str:
        for k in keys:
            if not isinstance(r, dict) or k not in r:
                return "-"
            r = r[k]
        return f"{r:.4g}" if isinstance(r, float) else str(r)

    rows = []
    for src in results.get("perplexity", {}):
        rows.append((f"perplexity {src}", fmt(results, "perplexity", src, "perplexity"),
                     fmt(baseline, "perplexity", src, "perplexity")))
    for src in results.get("bleu", {}):
        rows.append((f"BLEU {src} (0-100) / chrF", f"{fmt(results, 'bleu', src, 'bleu')} / {fmt(results, 'bleu', src, 'chrf')}",
                     f"{fmt(baseline, 'bleu', src, 'bleu')} / {fmt(baseline, 'bleu', src, 'chrf')}"))
    for src, entry in results.get("accuracy", {}).items():
        rows.append((f"accuracy {src} (n={entry['n']})", fmt(results, "accuracy", src, "accuracy"),
                     fmt(baseline, "accuracy", src, "accuracy")))
        if "thinking_cut" in entry:
            cut = entry["thinking_cut"]
            rows.append((f"no answer {src}: thinking cut at {cut['at_tokens']} tokens", str(cut["n"]),
                         fmt(baseline, "accuracy", src, "thinking_cut", "n")))
        if "strict" in entry:
            rows.append((f"accuracy {src} strict (####)", fmt(results, "accuracy", src, "strict", "accuracy"),
                         fmt(baseline, "accuracy", src, "strict", "accuracy")))
        for group in ("by_level", "by_subject", "by_task"):
            for k in entry.get(group, {}):
                rows.append((f"accuracy {src} {k}", fmt(results, "accuracy", src, group, k, "accuracy"),
                             fmt(baseline, "accuracy", src, group, k, "accuracy")))
    if "generation" in results:
        rows.append(("generation tokens/s", fmt(results, "generation", "tokens_per_second"),
                     fmt(baseline, "generation", "tokens_per_second")))
    return rows


def pick_samples(samples: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per source, the first few correct and the first few wrong generations (file order: deterministic)."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for kind in (True, False, None):
        for s in samples:
            if s["correct"] is kind and sum(x["correct"] is kind for x in by[s["source"]]) < SAMPLES_PER_KIND:
                by[s["source"]].append(s)
    return dict(sorted(by.items()))


def _verdict(s: dict[str, Any]) -> str:
    if s.get("thinking_cut"):
        return f"no answer: thinking cut at {s['new_tokens']} tokens"
    return {True: "correct", False: "wrong", None: "not scored"}[s["correct"]]


def render_markdown(results: dict[str, Any], gates: list[Gate], baseline: dict[str, Any] | None,
                    samples: list[dict[str, Any]]) -> str:
    lines = [f"# Evaluation of {results['model']}", "",
             f"Data: `{results['data']}` ({results['examples']} examples, sha256 `{results['data_sha256'][:12]}`); "
             f"model sha256 `{results['model_sha256'][:12]}`.", "", "## Quality gates", "",
             "| gate | value | threshold | status |", "| --- | --- | --- | --- |"]
    for g in gates:
        lines.append(f"| {g.name} | {'-' if g.value is None else f'{g.value:.4g}'} | {g.op} {g.threshold:g} | {g.status} |")
    lines += ["", "## Metrics", "", "| metric | this model | baseline |", "| --- | --- | --- |"]
    lines += [f"| {m} | {v} | {b} |" for m, v, b in metric_rows(results, baseline)]
    lines += ["", "## Sample generations", ""]
    for src, ss in pick_samples(samples).items():
        lines += [f"### {src}", ""]
        for s in ss:
            lines += [f"**{_verdict(s)}** (`{s['id']}`): extracted `{s['extracted']}`, reference `{s['reference']}`", "",
                      "```text", s["output"].strip()[:1500], "```", ""]
    return "\n".join(lines) + "\n"


def render_html(results: dict[str, Any], gates: list[Gate], baseline: dict[str, Any] | None,
                samples: list[dict[str, Any]], images: dict[str, str]) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation: {e(results['model'])}</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px}.pass{color:#1a7f1a}.fail{color:#c02020}"
             "pre{background:#f4f4f4;padding:8px;white-space:pre-wrap}</style></head><body>",
             f"<h1>Evaluation of {e(results['model'])}</h1>",
             f"<p>Data <code>{e(results['data'])}</code>: {results['examples']} examples.</p>",
             "<h2>Quality gates</h2><table id='gates'><tr><th>gate</th><th>value</th><th>threshold</th><th>status</th></tr>"]
    for g in gates:
        value = "-" if g.value is None else f"{g.value:.4g}"
        parts.append(f"<tr><td>{e(g.name)}</td><td>{value}</td><td>{e(g.op)} {g.threshold:g}</td>"
                     f"<td class='{g.status.split()[0]}'>{e(g.status)}</td></tr>")
    parts.append("</table><h2>Metrics</h2><table id='metrics'><tr><th>metric</th><th>this model</th><th>baseline</th></tr>")
    parts += [f"<tr><td>{e(m)}</td><td>{e(v)}</td><td>{e(b)}</td></tr>" for m, v, b in metric_rows(results, baseline)]
    parts.append("</table>")
    for title, png in images.items():
        parts.append(f"<h2>{e(title)}</h2><img alt='{e(title)}' src='data:image/png;base64,{png}'>")
    parts.append("<h2>Sample generations</h2>")
    for src, ss in pick_samples(samples).items():
        parts.append(f"<h3>{e(src)}</h3>")
        for s in ss:
            parts.append(f"<p><b>{_verdict(s)}</b> <code>{e(s['id'])}</code>: extracted <code>{e(str(s['extracted']))}"
                         f"</code>, reference <code>{e(str(s['reference']))}</code></p><pre>{e(s['output'].strip()[:1500])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(out: Path, results: dict[str, Any], samples: list[dict[str, Any]], gates: list[Gate],
                  baseline: dict[str, Any] | None, run_dir: Path | None) -> None:
    images = plots(results, gates, baseline, loss_curves(run_dir))
    with atomic_open(out / "report.md") as f:
        f.write(render_markdown(results, gates, baseline, samples))
    with atomic_open(out / "report.html") as f:
        f.write(render_html(results, gates, baseline, samples, images))
