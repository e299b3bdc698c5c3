"""Where the URLs come from: a list file, a sitemap (or sitemap index), or an RSS / Atom feed.

Sitemaps and feeds are fetched by the crawler's own fetcher (safety rules and robots.txt apply)
and parsed with lxml with entities and network access off, so a hostile XML file cannot expand
entities ("billion laughs") or make the parser fetch anything. trafilatura has feed and sitemap
helpers, but they fetch by themselves (around our safety rules) and drop links whose host is an
IP address or another domain, so they cannot be used here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from lxml import etree

from curiosity_sft.errors import UserError
from curiosity_sft.web.fetch import BoundedDecoder, Failure, Fetched

MAX_SITEMAP_DEPTH = 3  # a sitemap index of sitemap indexes of sitemaps


@dataclass
class Discovered:
    """The URLs to ingest, in first-seen order, and what could not be read on the way."""

    urls: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)  # {url, reason, detail}


def normalise(url: str) -> str:
    """The URL without its fragment (the same document), host lower-cased by httpx; ValueError when
    it is not an absolute URL (a relative path or a stray word in a list)."""
    u = httpx.URL(url.strip())
    if not u.scheme or not u.host or " " in url.strip():
        raise ValueError(f"not an absolute URL: {url!r}")
    return str(u.copy_with(fragment=None))


def read_url_list(path: Path) -> Discovered:
    """One URL a line; blank lines and ``#`` comments are skipped; a malformed line is a failure."""
    if not path.is_file():
        raise UserError("URL list not found", where=path, fix="pass a text file with one URL a line to --urls")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise UserError("binary file, not a URL list", where=path, fix="one http(s) URL a line")
    out = Discovered()
    for lineno, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            url = normalise(line)
        except (httpx.InvalidURL, ValueError):
            out.failures.append({"url": line, "reason": "bad_url", "detail": f"{path}:{lineno}"})
            continue
        out.urls.append(url)
    if not out.urls and not out.failures:
        raise UserError("no URLs in file", where=path, fix="one http(s) URL a line")
    out.urls = list(dict.fromkeys(out.urls))
    return out


def parse_xml(data: bytes) -> etree._Element | None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    return root


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def sitemap_locs(root: etree._Element) -> tuple[list[str], list[str]]:
    """(page URLs, child sitemap URLs) of a ``<urlset>`` or ``<sitemapindex>``."""
    pages, children = [], []
    for el in root.iter():
        if _local(el) == "loc" and el.text and el.getparent() is not None:
            (children if _local(el.getparent()) == "sitemap" else pages).append(el.text.strip())
    return pages, children


def feed_links(root: etree._Element, base: str) -> list[str]:
    """Item links of an RSS 2.0 / RSS 1.0 (RDF) or Atom feed (Atom: ``rel="alternate"`` or no rel)."""
    links = []
    for item in root.iter():
        name = _local(item)
        if name == "item":
            for child in item:
                if _local(child) == "link" and child.text and child.text.strip():
                    links.append(child.text.strip())
                    break
        elif name == "entry":
            for child in item:
                if _local(child) == "link" and child.get("href") and child.get("rel", "alternate") == "alternate":
                    links.append(child.get("href"))
                    break
    return [str(httpx.URL(base).join(link)) for link in links]


def _gunzip(data: bytes, limit: int) -> bytes:
    if not data.startswith(b"\x1f\x8b"):
        return data
    try:
        return BoundedDecoder(["gzip"], limit).feed(data)
    except Failure as e:
        raise Failure("decode_error", f"sitemap .gz: {e}") from None


def discover(kind: str, value: str, fetch: Callable[[str], Fetched], max_urls: int, max_bytes: int) -> Discovered:
    """URLs from ``--urls FILE``, ``--sitemap URL`` or ``--feed URL``, at most ``max_urls``."""
    if kind == "urls":
        out = read_url_list(Path(value))
        out.urls = out.urls[:max_urls]
        return out
    out = Discovered()
    todo = [(value, 0)]
    seen = set()
    while todo and len(out.urls) < max_urls:
        url, depth = todo.pop(0)
        if url in seen:
            continue
        seen.add(url)
        r = fetch(url)
        root = None
        if r.error is None and r.body is not None:
            try:
                body = _gunzip(r.body, max_bytes)
            except Failure as e:
                r.error, r.detail = e.reason, e.detail
            else:
                root = parse_xml(body)
                if root is None:
                    r.error, r.detail = "bad_xml", f"not a {kind}"
        if root is None:
            if url == value:
                raise UserError(f"cannot read the {kind}: {r.error or 'no body'} {r.detail}".strip(), where=value,
                                fix=f"check the --{kind} URL (and --allow-private-addresses for local servers)")
            out.failures.append({"url": url, "reason": f"{kind}_{r.error}", "detail": r.detail})
            continue
        if kind == "feed":
            found = feed_links(root, r.final_url)
        else:
            found, children = sitemap_locs(root)
            if depth < MAX_SITEMAP_DEPTH:
                todo += [(c, depth + 1) for c in children]
        for link in found:
            try:
                out.urls.append(normalise(link))
            except (httpx.InvalidURL, ValueError):
                out.failures.append({"url": link, "reason": "bad_url", "detail": f"in {url}"})
    out.urls = list(dict.fromkeys(out.urls))[:max_urls]
    return out

