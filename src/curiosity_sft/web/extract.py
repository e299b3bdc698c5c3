"""HTML -> main text with trafilatura (menus, footers, ads and comments left out), math kept.

trafilatura already turns MathML's TeX annotation (MathML pages, KaTeX) into ``\\(...\\)`` and
keeps ``$...$`` / ``\\[...\\]`` text as it is. What it drops is MathJax's ``<script type="math/tex">``
(scripts are never content), so those are turned into ``$...$`` / ``$$...$$`` text first; and
KaTeX's drawn copy of each formula is removed, or its letters would follow the TeX.

Settings as in FineWeb's extraction step (``favor_precision``, no comments), except
``deduplicate``: trafilatura's deduplication keeps a process-wide cache of paragraphs already
seen, so a page's text would depend on which pages were extracted before it in the same process;
duplicates are removed later by the near-duplicate filter instead, the same for every order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html
import trafilatura
from lxml import etree
from trafilatura.utils import decode_file

XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")  # lxml refuses a str that declares its encoding


@dataclass
class Extracted:
    """Main text and provenance of a page; ``text`` None when trafilatura found no main content."""

    text: str | None
    title: str | None = None
    date: str | None = None
    sitename: str | None = None


def _tex_scripts_to_text(tree: lxml.html.HtmlElement) -> None:
    for script in tree.xpath('//script[starts-with(translate(@type, "MATHEX", "mathex"), "math/tex")]'):
        display = "mode=display" in (script.get("type") or "").replace(" ", "")
        tex = (script.text or "").strip()
        span = etree.Element("span")
        span.text = f"$${tex}$$" if display else f"${tex}$"
        span.tail = script.tail
        script.getparent().replace(script, span)


def _drop_katex_rendering(tree: lxml.html.HtmlElement) -> None:
    """KaTeX writes each formula twice: MathML with the TeX source (kept) and spans that draw it
    (``katex-html``, hidden from screen readers), which would add stray letters to the text."""
    for el in tree.xpath('//span[contains(concat(" ", normalize-space(@class), " "), " katex-html ")]'):
        el.drop_tree()


def extract(body: bytes, url: str, charset: str | None = None) -> Extracted:
    """The page's main text, title and date (trafilatura), with LaTeX kept as LaTeX."""
    try:
        html = body.decode(charset, errors="replace") if charset else decode_file(body)
    except LookupError:  # an unknown charset name in Content-Type
        html = decode_file(body)
    try:
        tree = lxml.html.document_fromstring(XML_DECLARATION.sub("", html, count=1))
    except (etree.ParserError, ValueError):
        return Extracted(None)
    _tex_scripts_to_text(tree)
    _drop_katex_rendering(tree)
    doc = trafilatura.bare_extraction(tree, url=url, favor_precision=True, include_comments=False,
                                      deduplicate=False, with_metadata=True)
    if doc is None or not (doc.text or "").strip():
        return Extracted(None)
    return Extracted(doc.text.strip(), doc.title or None, doc.date or None, doc.sitename or None)
