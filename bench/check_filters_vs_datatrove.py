"""How often our FineWeb filters (``web/quality.py``) decide as datatrove's own filters do.

Runs both on the same texts, in FineWeb's order (Gopher repetition, Gopher quality, C4 with
``filter_no_terminal_punct=False``, FineWeb quality; language identification left out: datatrove
downloads its model), and counts agreement on keep/drop and on the first rule that drops a text.
datatrove's C4 curly-bracket rule is turned off on its side too, since ours never applies it.

datatrove and spaCy are not dependencies of this project; install them beside it, e.g.
``pip install --target /tmp/dt datatrove spacy``, then:

    python bench/check_filters_vs_datatrove.py --datatrove-path /tmp/dt [--raw ../shared/data/raw]

Texts: book passages, GSM8K and MATH solutions, logic puzzles from ``--raw`` (read, never copied),
and the pages of the test web (``tests/web_server.py``). Writes ``bench/results/filters_vs_datatrove.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from curiosity_sft.data.records import BadRecords  # noqa: E402
from curiosity_sft.data.sources import detect_format, read_source  # noqa: E402
from curiosity_sft.data.sources.options import SourceOptions  # noqa: E402
from curiosity_sft.web import quality as q  # noqa: E402

STAGE = {"gopher_short_doc": "too_short", "gopher_long_doc": "too_long"}


def ours(text: str, cfg: q.QualityConfig) -> str:
    """Our rules in datatrove's order (repetition before Gopher's length rule), to compare rule by rule."""
    if q.gopher_repetition(text, cfg) is not None:
        return "gopher_repetition"
    return q.first_failure(text, cfg)[0] or "kept"


def theirs(text: str) -> str:
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    doc = Document(text=text, id="x")
    for stage, f in (("gopher_repetition", GopherRepetitionFilter()), ("gopher_quality", GopherQualityFilter()),
                     ("c4", C4QualityFilter(filter_no_terminal_punct=False, filter_curly_bracket=False)),
                     ("fineweb_quality", FineWebQualityFilter())):
        verdict = f.filter(doc)
        if verdict is not True:
            reason = verdict[1] if isinstance(verdict, tuple) else stage
            return STAGE.get(reason, stage)
    return "kept"


def texts(raw: Path | None) -> dict[str, list[str]]:
    import web_server

    out = {"test web pages": [getattr(web_server, n) for n in ("RIVER", "LATEX", "BREAD", "LIGHTHOUSE", "BEES",
                                                               "TIDES", "VOLCANO")]}
    if raw is None or not raw.is_dir():
        return out
    opts = SourceOptions(book_instructions=False)
    bad = BadRecords("skip")
    for name, paths in (("book passages", sorted((raw / "children_books").glob("*.txt"))),
                        ("gsm8k solutions", [raw / "gsm8k" / "train.jsonl"]),
                        ("math solutions", [raw / "math" / "test.jsonl"]),
                        ("logic puzzles", sorted((raw / "logic_puzzles").glob("*.jsonl")))):
        found = []
        for p in paths:
            if p.exists():
                for _, ex in read_source(p, detect_format(p, bad), opts, bad):
                    found.append(ex.text if ex.text is not None else "\n\n".join(m["content"] for m in ex.messages))
        out[name] = found[:1000]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datatrove-path", required=True, help="folder where datatrove and spacy were installed")
    ap.add_argument("--raw", type=Path, default=ROOT.parent / "shared" / "data" / "raw")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "filters_vs_datatrove.json")
    a = ap.parse_args()
    sys.path.append(a.datatrove_path)  # after our own packages: theirs must not replace numpy & co.
    cfg = q.QualityConfig()
    report = {}
    for name, group in texts(a.raw).items():
        pairs = [(ours(t, cfg), theirs(t)) for t in group if t.strip()]
        agree = sum(x == y for x, y in pairs)
        report[name] = {"texts": len(pairs), "same_first_rule": agree,
                        "same_keep_or_drop": sum((x == "kept") == (y == "kept") for x, y in pairs),
                        "ours": dict(Counter(x for x, _ in pairs)), "datatrove": dict(Counter(y for _, y in pairs)),
                        "disagreements": dict(Counter(f"{x} / {y}" for x, y in pairs if x != y))}
        print(f"{name:16s} {agree}/{len(pairs)} same first rule; ours {report[name]['ours']}; "
              f"datatrove {report[name]['datatrove']}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
