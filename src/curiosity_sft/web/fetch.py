"""One URL in, one ``Fetched`` out: safe, polite, bounded, never raising for a page's own failure.

httpx does the HTTP; this module adds what a crawler needs on top and httpx leaves to callers:

- redirects followed by hand (at most ``max_redirects``), so each hop is checked again by the
  safety rules and robots.txt, a loop is recognised, and a non-http target is refused;
- retries with exponential back-off on 429/5xx, timeouts and refused connections, honouring
  ``Retry-After`` (seconds or an HTTP date) up to ``max_retry_after``;
- a cap on the *decoded* body: httpx's gzip/deflate decoders inflate a whole network chunk at
  once (a 64 KiB chunk of a gzip bomb is 64 MiB), so the raw stream is decoded here with zlib's
  ``max_length``, and nothing past the cap is ever inflated;
- a deadline per request besides httpx's per-read timeout, so a server that trickles one byte a
  second cannot hold a worker for ever;
- conditional requests (``If-None-Match`` / ``If-Modified-Since``) when validators are given;
- no cookies kept, no proxy or ``.netrc`` credentials (see ``safety.GuardedTransport``).
"""

from __future__ import annotations

import email.utils
import http.cookiejar
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import httpx

from curiosity_sft.web.politeness import ROBOTS_MAX_BYTES, ROBOTS_REDIRECTS, HostSlots, Robots
from curiosity_sft.web.safety import GuardedTransport, Refused, check_url

RETRY_STATUS = (429, 500, 502, 503, 504)
REDIRECT_STATUS = (301, 302, 303, 307, 308)
HTML_TYPES = ("text/html", "application/xhtml+xml")
XML_TYPES = ("application/xml", "text/xml", "application/rss+xml", "application/atom+xml", "application/rdf+xml",
             "application/gzip", "application/x-gzip", "text/plain")


@dataclass(frozen=True)
class FetchOptions:
    """Every limit of the fetcher; the defaults are a polite crawler's, tests shrink the delays."""

    user_agent: str
    allow_private: bool = False
    timeout: float = 10.0  # connect and each read
    deadline: float = 30.0  # whole request, body included
    retries: int = 3
    backoff: float = 1.0  # first retry waits this, then doubles
    max_retry_after: float = 120.0
    max_bytes: int = 10 * 1024 * 1024  # decoded body
    max_redirects: int = 5
    delay: float = 1.0  # between two requests to one host
    max_crawl_delay: float = 60.0


@dataclass
class Fetched:
    """The outcome of fetching one URL: a body, a 304, or an error reason (never an exception)."""

    url: str
    final_url: str
    status: int = 0
    body: bytes | None = None
    content_type: str = ""
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None  # reason, as in dropped.jsonl
    detail: str = ""
    attempts: int = 0
    redirects: list[str] = field(default_factory=list)
    fetched_at: str = ""


class Failure(Exception):
    def __init__(self, reason: str, detail: str = "", status: int = 0) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.status = reason, detail, status


class BoundedDecoder:
    """Content-Encoding decoding that stops as soon as the output passes ``limit`` bytes."""

    def __init__(self, encodings: list[str], limit: int, truncate: bool = False) -> None:
        self.limit, self.truncate = limit, truncate
        self.size = 0
        self.done = False
        self.stages = [self._stage(e) for e in reversed(encodings)]  # last applied is first removed

    @staticmethod
    def _stage(encoding: str) -> str:
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise Failure("unsupported_encoding", encoding)
        return encoding

    def _inflate(self, kind: str, data: bytes, state: dict, room: int) -> bytes:
        """Decode ``data`` through one stage, producing at most ``room`` + 1 bytes."""
        out = bytearray()
        while data and len(out) <= room:
            d = state.get("d")
            if d is None or d.eof:
                rest = d.unused_data if d is not None else b""
                d = state["d"] = zlib.decompressobj(16 + zlib.MAX_WBITS if kind != "deflate" else zlib.MAX_WBITS)
                data = rest + data if rest else data
            try:
                out += d.decompress(data, room + 1 - len(out))
            except zlib.error:
                if kind == "deflate" and not state.get("raw"):  # servers send raw deflate without the zlib header
                    state.update(raw=True, d=zlib.decompressobj(-zlib.MAX_WBITS))
                    continue
                raise Failure("decode_error", f"bad {kind} data") from None
            data = d.unconsumed_tail or (d.unused_data if d.eof else b"")
            if d.eof and data:
                state["d"] = None
        return bytes(out)

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        room = self.limit - self.size
        out = chunk
        for i, kind in enumerate(self.stages):
            out = self._inflate(kind, out, self.__dict__.setdefault(f"_s{i}", {}), room)
        if len(out) > room:
            if not self.truncate:
                raise Failure("too_large", f"decoded body over {self.limit} bytes")
            out, self.done = out[:room], True
        self.size += len(out)
        return out


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


class NoCookies(http.cookiejar.DefaultCookiePolicy):
    """A policy that stores no cookie, so none is ever sent back."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


class Fetcher:
    """Fetches URLs for one ingest; thread-safe (one httpx client, per-host slots)."""

    def __init__(self, opts: FetchOptions, sleep: Callable[[float], None] = time.sleep) -> None:
        self.opts = opts
        self.sleep = sleep
        self.client = httpx.Client(
            transport=GuardedTransport(opts.allow_private), follow_redirects=False, trust_env=False,
            cookies=http.cookiejar.CookieJar(NoCookies()),
            timeout=httpx.Timeout(opts.timeout),
            headers={"User-Agent": opts.user_agent, "Accept-Encoding": "gzip, deflate",
                     "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.5"})
        self.slots = HostSlots(opts.delay, sleep=sleep)
        self.robots = Robots(opts.user_agent, self._robots_text, self.slots, opts.max_crawl_delay)

    def close(self) -> None:
        self.client.close()

    def _robots_text(self, url: str) -> tuple[int, bytes | None, str | None]:
        r = self.fetch(url, accept=None, robots=False, max_redirects=max(ROBOTS_REDIRECTS, self.opts.max_redirects),
                       max_bytes=ROBOTS_MAX_BYTES, truncate=True)
        return r.status, r.body, r.error

    def fetch(self, url: str, accept: tuple[str, ...] | None = HTML_TYPES, validators: dict[str, str] | None = None,
              robots: bool = True, max_redirects: int | None = None, max_bytes: int | None = None,
              truncate: bool = False) -> Fetched:
        """Fetch ``url``: follow redirects, retry, check types and sizes; failures come back as ``error``."""
        out = Fetched(url=url, final_url=url, fetched_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        hops = self.opts.max_redirects if max_redirects is None else max_redirects
        seen = {url}
        current = url
        try:
            while True:
                u = check_url(current, self.opts.allow_private)
                if robots:
                    self.robots.check(u)
                headers = dict(validators or {}) if current == url else {}
                status = self._request(u, out, headers, accept, max_bytes or self.opts.max_bytes, truncate)
                if status not in REDIRECT_STATUS:
                    return out
                target = out.detail
                if len(out.redirects) >= hops:
                    raise Failure("too_many_redirects", f"more than {hops} redirects", status)
                if target in seen:
                    raise Failure("redirect_loop", f"{current} -> {target}", status)
                seen.add(target)
                out.redirects.append(target)
                out.final_url = current = target
        except Refused as e:
            out.error, out.detail = e.reason, e.detail
        except Failure as e:
            out.error, out.detail = e.reason, e.detail
            out.status = e.status or out.status
        out.body = None
        return out

    def _request(self, u: httpx.URL, out: Fetched, headers: dict[str, str], accept: tuple[str, ...] | None,
                 max_bytes: int, truncate: bool) -> int:
        """One URL (no redirect following) with retries; fills ``out``; returns the final status."""
        host = u.host
        wait = self.opts.backoff
        for attempt in range(self.opts.retries + 1):
            out.attempts += 1
            try:
                with self.slots.slot(host):
                    status = self._once(u, out, headers, accept, max_bytes, truncate)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
                reason = "timeout" if isinstance(e, httpx.TimeoutException) else "connection_error"
                if attempt == self.opts.retries:
                    raise Failure(reason, str(e) or type(e).__name__) from None
            except Failure as e:
                if e.reason != "timeout" or attempt == self.opts.retries:
                    raise
            else:
                if status not in RETRY_STATUS:
                    return status
                if attempt == self.opts.retries:
                    raise Failure(f"http_{status}", f"still {status} after {attempt + 1} attempts", status)
                asked = retry_after(out.detail, time.time()) if status in (429, 503) else None
                if asked is not None:
                    if asked > self.opts.max_retry_after:
                        raise Failure("retry_after_too_long", f"Retry-After {asked:g} s > {self.opts.max_retry_after:g} s",
                                      status)
                    self.slots.defer(host, asked)  # the host's next slot, for every worker
                    continue
            self.sleep(wait)
            wait *= 2
        raise AssertionError("unreachable")

    def _once(self, u: httpx.URL, out: Fetched, headers: dict[str, str], accept: tuple[str, ...] | None,
              max_bytes: int, truncate: bool) -> int:
        start = time.monotonic()
        with self.client.stream("GET", u, headers=headers) as r:
            out.status = r.status_code
            out.detail = ""
            if r.status_code in REDIRECT_STATUS:
                location = r.headers.get("location")
                if not location:
                    raise Failure("bad_redirect", "redirect without Location", r.status_code)
                out.detail = str(u.join(location))
                return r.status_code
            if r.status_code in RETRY_STATUS:
                out.detail = r.headers.get("retry-after", "")
                return r.status_code
            if r.status_code == 304:
                return 304
            if not 200 <= r.status_code < 300:
                if accept is None:  # robots.txt: the status itself is the answer
                    return r.status_code
                raise Failure(f"http_{r.status_code}", r.reason_phrase, r.status_code)
            out.content_type = r.headers.get("content-type", "").split(";")[0].strip().lower()
            out.charset = r.charset_encoding
            out.etag, out.last_modified = r.headers.get("etag"), r.headers.get("last-modified")
            if accept is not None and out.content_type and out.content_type not in accept:
                raise Failure("not_html" if accept == HTML_TYPES else "bad_content_type", out.content_type, r.status_code)
            declared = r.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes and not truncate and not r.headers.get("content-encoding"):
                raise Failure("too_large", f"Content-Length {declared} > {max_bytes}", r.status_code)
            encodings = [e.strip().lower() for e in r.headers.get("content-encoding", "").split(",")
                         if e.strip() and e.strip().lower() != "identity"]
            decoder = BoundedDecoder(encodings, max_bytes, truncate)
            body = bytearray()
            for chunk in r.iter_raw():
                body += decoder.feed(chunk)
                if decoder.done:
                    break
                if time.monotonic() - start > self.opts.deadline:
                    raise Failure("timeout", f"body not received within {self.opts.deadline:g} s", r.status_code)
            out.body = bytes(body)
            return r.status_code

