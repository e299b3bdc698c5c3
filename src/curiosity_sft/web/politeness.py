"""Being a polite crawler: robots.txt (RFC 9309, with protego) and one request at a time per host.

Python's ``urllib.robotparser`` predates RFC 9309 (first match instead of the longest match,
no ``$``/``*`` patterns), so rules are parsed by protego. What the RFC says about a robots.txt
that cannot be read is followed: a 4xx answer (no file) allows everything; a 5xx answer, a
timeout or a refused connection means "assume complete disallow" for this ingest.

robots.txt applies per origin (scheme, host, port); pacing is per host name, whatever the port or
scheme: one lock per host, a request waits for the previous one and for the delay after it, the
larger of ``--delay`` and the host's robots ``crawl-delay``; a ``Retry-After`` answer pushes the
host's next slot further.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
from protego import Protego

from curiosity_sft.web.safety import Refused

ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 2.5: parse at least 500 KiB; the rest may be ignored
ROBOTS_REDIRECTS = 5  # RFC 9309 2.3.1.2: follow at least five consecutive redirects


def origin(url: httpx.URL) -> str:
    """``scheme://host:port``: what a robots.txt and a politeness slot apply to."""
    return f"{url.scheme}://{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"


class HostSlots:
    """One request at a time per origin, ``delay`` seconds (or the host's own) between requests."""

    def __init__(self, delay: float, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.delay = delay
        self.sleep, self.clock = sleep, clock
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._next: dict[str, float] = {}
        self._host_delay: dict[str, float] = {}

    def set_host_delay(self, host: str, seconds: float) -> None:
        """The host's own gap between requests (robots crawl-delay), from now on."""
        with self._guard:
            self._host_delay[host] = max(seconds, self._host_delay.get(host, 0.0))
            self._next[host] = max(self._next.get(host, 0.0), self.clock() + seconds)

    def defer(self, host: str, seconds: float) -> None:
        """No request to ``host`` for ``seconds`` from now (a ``Retry-After`` answer)."""
        with self._guard:
            self._next[host] = max(self._next.get(host, 0.0), self.clock() + seconds)

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(host, threading.Lock())
        with lock:
            wait = self._next.get(host, 0.0) - self.clock()
            if wait > 0:
                self.sleep(wait)
            try:
                yield
            finally:
                gap = max(self.delay, self._host_delay.get(host, 0.0))
                with self._guard:
                    self._next[host] = max(self._next.get(host, 0.0), self.clock() + gap)


@dataclass
class RobotsVerdict:
    """What one origin's robots.txt says for our user agent."""

    rules: Protego | None  # None: everything allowed (no robots.txt)
    unreachable: str | None = None  # why robots.txt could not be read (then nothing is allowed)
    crawl_delay: float = 0.0


FetchText = Callable[[str], tuple[int, bytes | None, str | None]]  # url -> (status, body, error reason)


class Robots:
    """robots.txt per origin, fetched once per ingest through the crawler's own (safe) fetcher."""

    def __init__(self, user_agent: str, fetch: FetchText, slots: HostSlots, max_crawl_delay: float) -> None:
        self.token = user_agent.split("/")[0]
        self.fetch, self.slots, self.max_crawl_delay = fetch, slots, max_crawl_delay
        self._cache: dict[str, RobotsVerdict] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def verdict(self, url: httpx.URL) -> RobotsVerdict:
        key = origin(url)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one fetch per origin, even when two workers ask at once
            if key not in self._cache:
                self._cache[key] = self._load(key)
                self.slots.set_host_delay(url.host, self._cache[key].crawl_delay)
            return self._cache[key]

    def _load(self, host: str) -> RobotsVerdict:
        status, body, error = self.fetch(f"{host}/robots.txt")
        if error is not None or status >= 500 or status == 429:
            return RobotsVerdict(None, unreachable=error or f"robots.txt answered {status}")
        if status >= 400 or body is None:  # 4xx: "unavailable", crawl without restrictions
            return RobotsVerdict(None)
        rules = Protego.parse(body[:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace"))
        return RobotsVerdict(rules, crawl_delay=float(rules.crawl_delay(self.token) or 0.0))

    def check(self, url: httpx.URL) -> None:
        """``Refused`` when robots.txt does not let us fetch ``url`` (or could not be read)."""
        if url.path == "/robots.txt":
            return
        v = self.verdict(url)
        if v.unreachable is not None:
            raise Refused("robots_unreachable", v.unreachable)
        if v.crawl_delay > self.max_crawl_delay:
            raise Refused("crawl_delay_too_long", f"crawl-delay {v.crawl_delay:g} s > --max-crawl-delay "
                                                  f"{self.max_crawl_delay:g} s")
        if v.rules is not None and not v.rules.can_fetch(str(url), self.token):
            raise Refused("robots_disallowed", str(url))
