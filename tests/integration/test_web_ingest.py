"""``web ingest`` end to end against the local web in ``tests/web_server.py`` (loopback only).

One module-scoped crawl of every hostile case (the summary table it prints is the one in the
docs), then a second ingest of the same URLs (incremental), a third with a new list (near
duplicates against the corpus), a killed and resumed ingest, and 2 shards against 1.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curiosity_sft.cli import main
from curiosity_sft.data.prepare import prepare
from curiosity_sft.errors import DataError
from curiosity_sft.web import snapshot as snap
from curiosity_sft.web.extract import extract
from curiosity_sft.web.fetch import FetchOptions
from curiosity_sft.web.ingest import USER_AGENT, IngestOptions, ingest
from web_server import BEES, loopback_only, start_web, stop_web  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("loopback_only")
FAST = ["--allow-private-addresses", "--delay", "0", "--timeout", "0.3", "--deadline", "2", "--retries", "2",
        "--backoff", "0.05", "--max-bytes", str(256 * 1024)]
FAST_OPTS = FetchOptions(USER_AGENT, allow_private=True, delay=0.0, timeout=0.3, deadline=2, retries=2, backoff=0.05,
                         max_bytes=256 * 1024)


@pytest.fixture(scope="module")
def web():
    w = start_web()
    yield w
    stop_web(w)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


@pytest.fixture(scope="module")
def first(web, tmp_path_factory):
    """The first ingest of every case, through the CLI; returns (root, shard folder, stdout)."""
    tmp = tmp_path_factory.mktemp("web")
    (tmp / "urls.txt").write_text("# every case\n" + "\n".join(web.urls()) + "\nnot a url at all\n")
    (tmp / "eval.jsonl").write_text(json.dumps({"question": BEES.split(". ")[1] + "?", "answer": "1"}) + "\n")
    start = len(web.log)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["web", "ingest", "--urls", str(tmp / "urls.txt"), "--output", str(tmp / "web"), "--snapshot",
                     "first", "--decontaminate", str(tmp / "eval.jsonl"), *FAST]) == 0
    return tmp, tmp / "web" / "snapshots" / "first" / "shard-00000-of-00001", out.getvalue(), web.log[start:]


def test_every_case_is_ingested_skipped_or_reported(first, web):
    tmp, shard, stdout, log = first
    docs = {path_of(d["url"]): d for d in read_jsonl(shard / "documents.jsonl")}
    dropped = {path_of(d["url"]) if d["url"].startswith("http") else d["url"]: d for d in read_jsonl(shard / "dropped.jsonl")}
    assert sorted(docs) == ["/articles/bread.html", "/articles/latex.html", "/articles/lighthouse.html",
                            "/articles/river.html", "/flaky.html", "/old-tides"]
    assert {p: d["reason"] for p, d in dropped.items()} == {
        "/private/secret.html": "robots_disallowed", "/missing.html": "http_404", "/slow.html": "timeout",
        "/huge.html": "too_large", "/bomb.html": "too_large", "/file.bin": "not_html", "/disguised.html": "binary",
        "/loop1": "redirect_loop", "/to-ftp": "bad_scheme", "/to-metadata": "refused_address",
        "/french.html": "language", "/short.html": "too_short", "/articles/river-copy.html": "near_duplicate",
        "/articles/bees.html": "contaminated", "not a url at all": "bad_url"}
    assert dropped["/articles/river-copy.html"]["detail"] == web.a + "/articles/river.html"
    assert "169.254.169.254" in dropped["/to-metadata"]["detail"]
    assert docs["/old-tides"]["final_url"] == web.a + "/articles/tides.html"
    # what was asked of the servers
    asked = [(r.host, r.path) for r in log]
    assert ("a", "/private/secret.html") not in asked  # robots-disallowed: never requested
    assert asked.count(("a", "/flaky.html")) == 2  # 500, then 200 on the retry
    assert asked.count(("a", "/slow.html")) == 3  # timeout, retried twice
    assert asked.count(("a", "/robots.txt")) == 1 and asked.count(("b", "/robots.txt")) == 1
    b_times = [r.at for r in log if r.host == "b"]
    assert all(t2 - t1 >= 0.29 for t1, t2 in zip(b_times, b_times[1:], strict=False)), "B's crawl-delay is 0.3 s"
    assert all(r.headers["User-Agent"].startswith("curiosity-sft/") for r in log)
    assert not any("Cookie" in r.headers or "Authorization" in r.headers for r in log)
    # the summary table on stdout
    for row in ("URLs in this shard", "robots_disallowed", "near_duplicate", "kept"):
        assert row in stdout


def test_extraction_drops_page_furniture_and_keeps_math(first):
    _, shard, _, _ = first
    docs = {path_of(d["url"]): d for d in read_jsonl(shard / "documents.jsonl")}
    text = "\n".join(d["text"] for d in docs.values())
    for furniture in ("WATCHES", "Contact us", "All rights reserved", "Privacy"):
        assert furniture not in text
    latex = docs["/articles/latex.html"]
    assert "$ax^2 + bx + c = 0$" in latex["text"] and "$$x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}$$" in latex["text"]
    assert "\\(\\Delta = b^2 - 4ac\\)" in latex["text"] and "$e^{i\\pi} + 1 = 0$" in latex["text"]
    assert latex["title"] == "The quadratic formula" and latex["date"] == "2024-05-01" and latex["language"] == "en"


def test_snapshot_layout_and_manifest(first):
    tmp, shard, _, _ = first
    root = tmp / "web"
    assert sorted(p.name for p in root.iterdir()) == ["cache", "manifest.json", "snapshots"]  # .work removed
    assert sorted(p.name for p in shard.iterdir()) == ["documents.jsonl", "dropped.jsonl", "manifest.json"]
    m = json.loads((shard / "manifest.json").read_text())
    assert m["written_by"]["command"] == "web-ingest" and json.loads((root / "manifest.json").read_text())["kind"] == "root"
    assert m["counts"]["kept"] == 6 and m["filters"]["near_duplicate"] == 1 and m["filters"]["language"] == 1
    rows = {path_of(u["url"]): u for u in m["urls"]}
    assert rows["/articles/bread.html"]["status"] == 200 and rows["/articles/bread.html"]["etag"] == '"bread-v1"'
    assert len(rows["/articles/bread.html"]["sha256"]) == 64 and rows["/articles/bread.html"]["text_sha256"]
    assert rows["/missing.html"]["outcome"] == "http_404" and rows["/articles/river.html"]["fetched_at"]
    assert m["decontamination"]["eval_sets"][1]["examples"] == 1
    assert m["files"]["documents.jsonl"] == hashlib.sha256((shard / "documents.jsonl").read_bytes()).hexdigest()


def test_second_ingest_revalidates_and_reuses_extractions(first, web):
    tmp, shard, _, _ = first
    before = {p.name: p.read_bytes() for p in shard.iterdir()}
    calls = []

    def counting_extract(body, url, charset):
        calls.append(url)
        return extract(body, url, charset)

    start = len(web.log)
    urls = tmp / "good.txt"
    urls.write_text("\n".join(web.a + p for p in ("/articles/river.html", "/articles/bread.html", "/articles/latex.html")))
    r = ingest(IngestOptions("urls", str(urls), tmp / "web", fetch=FAST_OPTS, snapshot="second", show_progress=False),
               extract_fn=counting_extract)
    log = web.log[start:]
    bread = [x for x in log if x.path == "/articles/bread.html"]
    assert bread[0].headers.get("If-None-Match") == '"bread-v1"'  # the earlier response had an ETag
    table = dict(r.table)
    assert table["not modified (304)"] == 1 and table["unchanged body, not re-extracted"] == 2 and calls == []
    assert table["kept"] == 3
    assert {p.name: p.read_bytes() for p in shard.iterdir()} == before  # the first snapshot is untouched
    assert sorted(p.name for p in (tmp / "web" / "snapshots").iterdir()) == ["first", "second"]
    # a third ingest with a page that repeats one already in the corpus (an earlier snapshot)
    copy = tmp / "copy.txt"
    copy.write_text(web.b + "/articles/river-copy.html\n")
    r3 = ingest(IngestOptions("urls", str(copy), tmp / "web", fetch=FAST_OPTS, snapshot="third", show_progress=False))
    [d] = read_jsonl(r3.folder / "dropped.jsonl")
    assert d["reason"] == "near_duplicate" and d["detail"] == web.a + "/articles/river.html"
    assert r3.manifest["corpus"]["snapshots"] == ["first", "second"]


@pytest.mark.slow  # a real process, killed with SIGKILL mid-crawl (~6 s)
def test_a_killed_ingest_resumes_without_fetching_twice(web, tmp_path):
    urls = [web.a + p for p in ("/articles/river.html", "/articles/latex.html", "/articles/lighthouse.html",
                                 "/articles/tides.html", "/french.html", "/short.html", "/missing.html")]
    (tmp_path / "urls.txt").write_text("\n".join(urls))
    cmd = [sys.executable, "-m", "curiosity_sft", "web", "ingest", "--urls", str(tmp_path / "urls.txt"),
           "--output", str(tmp_path / "web"), *FAST, "--delay", "0.4"]
    start = len(web.log)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while sum(r.path != "/robots.txt" for r in web.log[start:]) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    journal = next((tmp_path / "web" / ".work").glob("*/shard-00000-of-00001/journal.jsonl"))
    done = {json.loads(line)["url"] for line in journal.read_text().splitlines()}
    assert 2 <= len(done) < len(urls)
    resumed = len(web.log)
    assert main([*cmd[3:-2], "--delay", "0"]) == 0
    again = [web.a + r.path for r in web.log[resumed:] if r.path != "/robots.txt"]
    assert not set(again) & done and sorted(set(again) | done) == sorted(urls)
    [folder] = (tmp_path / "web" / "snapshots").iterdir()  # the interrupted run's snapshot, now complete
    assert not (tmp_path / "web" / ".work").exists()
    m = snap.read_manifest(folder / "shard-00000-of-00001")
    assert m["counts"]["urls"] == len(urls) and m["counts"]["kept"] == 4


@pytest.mark.slow  # a real process interrupted with Ctrl-C (~5 s)
def test_ctrl_c_stops_cleanly_and_the_rerun_finishes(web, tmp_path):
    urls = [web.a + p for p in ("/articles/river.html", "/articles/latex.html", "/articles/lighthouse.html",
                                 "/articles/tides.html", "/missing.html")]
    (tmp_path / "urls.txt").write_text("\n".join(urls))
    cmd = [sys.executable, "-m", "curiosity_sft", "web", "ingest", "--urls", str(tmp_path / "urls.txt"),
           "--output", str(tmp_path / "web"), *FAST, "--delay", "0.5"]
    start = len(web.log)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while sum(r.path != "/robots.txt" for r in web.log[start:]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted" in err
    assert not (tmp_path / "web" / "snapshots").exists() or not any((tmp_path / "web" / "snapshots").iterdir())
    assert main([*cmd[3:-2], "--delay", "0"]) == 0
    [shard] = (tmp_path / "web" / "snapshots").glob("*/shard-*")
    assert snap.read_manifest(shard)["counts"]["urls"] == len(urls)
    assert all(sum(web.a + r.path == u for r in web.log[start:]) == 1 for u in urls)  # none fetched twice


def test_two_shards_give_the_same_merged_snapshot_as_one(web, tmp_path):
    pages = [web.a + p for p in ("/articles/river.html", "/articles/latex.html", "/articles/bread.html",
                                  "/french.html")] + [web.b + p for p in ("/articles/river-copy.html",
                                                                          "/articles/bees.html")]
    (tmp_path / "urls.txt").write_text("\n".join(pages))
    ingest(IngestOptions("urls", str(tmp_path / "urls.txt"), tmp_path / "one", fetch=FAST_OPTS, snapshot="s",
                         show_progress=False))
    shards = [ingest(IngestOptions("urls", str(tmp_path / "urls.txt"), tmp_path / "two", fetch=FAST_OPTS,
                                   num_shards=2, shard_index=i, snapshot="s", show_progress=False)) for i in (0, 1)]
    hosts = [{u["url"].split("/")[2] for u in s.manifest["urls"]} for s in shards]
    assert hosts == [{web.a.split("/")[2]}, {web.b.split("/")[2]}]  # partitioned by host
    # within its own shard the copy is not a near duplicate of anything: the merge must find it
    assert "near_duplicate" not in {d["reason"] for d in read_jsonl(shards[1].folder / "dropped.jsonl")}
    with pytest.raises(DataError, match="incomplete"):
        _merge_one_shard(tmp_path)
    a, b = snap.merge(tmp_path / "one"), snap.merge(tmp_path / "two")
    assert [json.dumps(d, sort_keys=True) for d in a.documents] == [json.dumps(d, sort_keys=True) for d in b.documents]
    assert [(d["url"], d["reason"], d["detail"]) for d in a.dropped] == [(d["url"], d["reason"], d["detail"])
                                                                          for d in b.dropped]
    assert ("near_duplicate", web.a + "/articles/river.html") in {(d["reason"], d["detail"]) for d in b.dropped}
    # and prepare makes byte-identical training data from either
    for name in ("one", "two"):
        prepare(tmp_path / name, tmp_path / f"prep-{name}", val_ratio=0.0, model="none", show_progress=False)
    assert (tmp_path / "prep-one" / "train.jsonl").read_bytes() == (tmp_path / "prep-two" / "train.jsonl").read_bytes()


def _merge_one_shard(tmp_path: Path) -> None:
    """Half a snapshot (shard 1 of 2 moved away) cannot be read as the whole."""
    folder = tmp_path / "two" / "snapshots" / "s"
    away = tmp_path / "away"
    (folder / "shard-00001-of-00002").rename(away)
    try:
        snap.merge(folder)
    finally:
        away.rename(folder / "shard-00001-of-00002")


def test_private_addresses_are_refused_by_default(web, tmp_path):
    (tmp_path / "urls.txt").write_text(web.a + "/articles/river.html\nhttp://localhost:9/x\n")
    start = len(web.log)
    r = ingest(IngestOptions("urls", str(tmp_path / "urls.txt"), tmp_path / "web",
                             fetch=FetchOptions(USER_AGENT, delay=0.0, retries=0), show_progress=False))
    assert {d["reason"] for d in read_jsonl(r.folder / "dropped.jsonl")} == {"refused_address"}
    assert web.log[start:] == []  # not even robots.txt was asked


@pytest.mark.parametrize(("flag", "path", "expected"), [
    ("--sitemap", "/sitemap_index.xml", ["/articles/bread.html", "/articles/latex.html", "/articles/river.html"]),
    ("--feed", "/feed.rss", ["/articles/latex.html", "/articles/lighthouse.html"]),
    ("--feed", "/feed.atom", ["/articles/bread.html", "/articles/river.html"]),
])
def test_sitemaps_and_feeds(web, tmp_path, flag, path, expected):
    assert main(["web", "ingest", flag, web.a + path, "--output", str(tmp_path / "web"), *FAST]) == 0
    [shard] = (tmp_path / "web" / "snapshots").glob("*/shard-*")
    assert sorted(path_of(d["url"]) for d in read_jsonl(shard / "documents.jsonl")) == expected


def test_prepare_mixes_a_web_snapshot_with_a_weight(first, tmp_path):
    tmp, _, _, _ = first
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "gsm8k.jsonl").write_text("".join(json.dumps(
        {"question": f"Tom has {i} apples and buys {i + 3} pears. How many fruits?", "answer": f"ok\n#### {2 * i + 3}"})
        + "\n" for i in range(40)))
    shutil.copytree(tmp / "web", raw / "web")
    (tmp_path / "data.yaml").write_text("sources:\n  - name: gsm8k\n    paths: [gsm8k.jsonl]\n    weight: 1\n"
                                        "  - name: webtext\n    paths: [web]\n    weight: 3\nmodel: null\n")
    r = prepare(raw, tmp_path / "out", data_config=tmp_path / "data.yaml", show_progress=False)
    share = r.manifest["mixing"]["after"]["webtext"]["share"]
    assert 0.7 < share < 0.8, share
    assert {e["meta"]["snapshot"] for e in read_jsonl(tmp_path / "out" / "train.jsonl") if e["source"] == "webtext"} \
        == {"second", "first"}  # the root: newest version of every URL over all snapshots  # weight 3 against 1: three quarters of the training tokens
    web_rows = [e for e in read_jsonl(tmp_path / "out" / "train.jsonl") if e["source"] == "webtext"]
    assert web_rows and all(e["meta"]["url"].startswith("http://127.0.0.") and "text" in e for e in web_rows)
    [row] = [i for i in r.manifest["inputs"] if i["format"] == "web"]
    assert row["path"] == "web/" and len(row["sha256"]) == 64
    # without a data config the web folder is one input; its cache and manifests are not read as data
    auto = prepare(raw, tmp_path / "auto", model="none", show_progress=False)
    assert sorted(i["path"] for i in auto.manifest["inputs"]) == ["gsm8k.jsonl", "web/"]


def test_user_mistakes_are_one_line_errors(web, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    (tmp_path / "urls.txt").write_text(web.a + "/articles/river.html\n")
    u = str(tmp_path / "urls.txt")
    cases = [
        ["--urls", u, "--output", str(tmp_path / "mine")],
        ["--urls", u, "--output", str(tmp_path / "w"), "--num-shards", "2"],
        ["--urls", u, "--output", str(tmp_path / "w"), "--num-shards", "2", "--shard-index", "2", "--snapshot", "x"],
        ["--urls", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "w")],
        ["--sitemap", web.a + "/missing.xml", "--output", str(tmp_path / "w")],
    ]
    for args in cases:
        assert main(["web", "ingest", *args, *FAST]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    assert main(["web", "ingest", "--urls", u, "--output", str(tmp_path / "w"), "--snapshot", "x", *FAST]) == 0
    assert main(["web", "ingest", "--urls", u, "--output", str(tmp_path / "w"), "--snapshot", "x", *FAST]) == 2
    assert "never rewritten" in capsys.readouterr().err
    shard = tmp_path / "w" / "snapshots" / "x" / "shard-00000-of-00001"
    assert main(["web", "ingest", "--urls", u, "--output", str(shard), *FAST]) == 2
    assert "not its --output folder" in capsys.readouterr().err


def test_a_page_that_breaks_the_extractor_is_one_failure(web, tmp_path):
    (tmp_path / "urls.txt").write_text(f"{web.a}/articles/river.html\n{web.a}/articles/lighthouse.html\n")

    def fragile(body, url, charset):
        if "lighthouse" in url:
            raise RecursionError("maximum recursion depth exceeded")  # what deeply nested HTML does to parsers
        return extract(body, url, charset)

    r = ingest(IngestOptions("urls", str(tmp_path / "urls.txt"), tmp_path / "web", fetch=FAST_OPTS,
                             show_progress=False), extract_fn=fragile)
    [d] = read_jsonl(r.folder / "dropped.jsonl")
    assert (path_of(d["url"]), d["reason"]) == ("/articles/lighthouse.html", "extract_error")
    assert r.manifest["counts"]["kept"] == 1


def test_progress_bar_counts_pages_while_fetching(web, tmp_path, monkeypatch):
    import rich.console
    from rich.progress import Progress

    from curiosity_sft.web import ingest as ingest_module

    screen = io.StringIO()
    real = ingest_module._progress

    def on_screen(enabled):
        p = real(enabled)
        assert isinstance(p, Progress) and not p.disable
        p.live.console = rich.console.Console(file=screen, force_terminal=True, width=100)
        return p

    monkeypatch.setattr(ingest_module, "_progress", on_screen)
    (tmp_path / "urls.txt").write_text(f"{web.a}/articles/river.html\n{web.a}/missing.html\n")
    ingest(IngestOptions("urls", str(tmp_path / "urls.txt"), tmp_path / "web", fetch=FAST_OPTS))
    out = screen.getvalue()
    assert "fetching" in out and "2/2" in out and "ok 1  failed 1" in out
