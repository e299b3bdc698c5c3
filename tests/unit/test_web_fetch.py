"""The fetcher's safety and politeness rules, each on a tiny loopback server or a fake."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import threading
import time
import tracemalloc
import zlib
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from curiosity_sft.web.fetch import BoundedDecoder, Failure, Fetcher, FetchOptions, retry_after
from curiosity_sft.web.politeness import HostSlots, Robots
from curiosity_sft.web.safety import Refused, address_problem, check_url
from web_server import loopback_only  # noqa: F401 - fixture

pytestmark = pytest.mark.usefixtures("loopback_only")
UA = "curiosity-sft/test"


@pytest.fixture
def server():
    """A loopback server whose behaviour per path the test sets in ``routes`` (status, headers, body)."""
    state = {"routes": {}, "log": [], "active": 0, "overlap": 0}
    lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802
            with lock:
                state["log"].append((self.path, dict(self.headers.items()), time.monotonic()))
                state["active"] += 1
                state["overlap"] = max(state["overlap"], state["active"])
            route = state["routes"].get(self.path, (404, {}, b""))
            if callable(route):
                route = route(sum(p == self.path for p, _, _ in state["log"]))
            status, headers, body = route
            time.sleep(headers.pop("X-Sleep", 0) if isinstance(headers.get("X-Sleep"), float) else 0)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            with lock:
                state["active"] -= 1

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state["base"] = f"http://127.0.0.1:{srv.server_address[1]}"
    yield state
    srv.shutdown()
    srv.server_close()


def fetcher(**kw) -> Fetcher:
    return Fetcher(FetchOptions(UA, **{"allow_private": True, "delay": 0.0, "timeout": 1.0, "backoff": 0.01, **kw}))


HTML = {"Content-Type": "text/html"}


# ---------------------------------------------------------------- safety
@pytest.mark.parametrize(("ip", "private_ok", "refused"), [
    ("127.0.0.1", False, True), ("10.1.2.3", False, True), ("192.168.0.1", False, True), ("172.16.5.4", False, True),
    ("169.254.10.1", False, True), ("100.64.0.1", False, True), ("::1", False, True), ("fd12::1", False, True),
    ("::ffff:127.0.0.1", False, True), ("fe80::1", False, True),
    ("127.0.0.1", True, False), ("10.1.2.3", True, False),
    ("169.254.169.254", True, True), ("fd00:ec2::254", True, True),  # metadata: refused even when allowed
    ("0.0.0.0", True, True), ("224.0.0.1", True, True), ("240.0.0.1", True, True), ("255.255.255.255", True, True),
    ("93.184.216.34", False, False), ("2606:4700::1111", False, False),
])
def test_address_rules(ip, private_ok, refused):
    assert (address_problem(ipaddress.ip_address(ip), private_ok) is not None) == refused


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://127.0.0.1/x", "bad_scheme"), ("file:///etc/passwd", "bad_scheme"), ("javascript:alert(1)", "bad_scheme"),
    ("http://user:pw@127.0.0.1/", "credentials_in_url"), ("http://127.0.0.1/", "refused_address"),
    ("http://[::1]:8080/", "refused_address"),
])
def test_check_url_refuses(url, reason):
    with pytest.raises(Refused) as e:
        check_url(url, allow_private=False)
    assert e.value.reason == reason


def test_connect_time_guard_refuses_even_when_the_precheck_is_skipped(server):
    """The socket only connects to checked addresses: a client call around ``check_url`` still fails."""
    server["routes"]["/"] = (200, HTML, b"<p>hi</p>")
    f = Fetcher(FetchOptions(UA, allow_private=False))
    with pytest.raises(Refused):
        f.client.get(server["base"] + "/")
    assert server["log"] == []


def test_a_name_that_resolves_to_a_private_address_is_refused(server, monkeypatch):
    """DNS rebinding: a public-looking name answering 127.0.0.1 is refused at check and at connect."""
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real("127.0.0.1", *a, **k)
                        if host == "rebind.example" else real(host, *a, **k))
    port = server["base"].rsplit(":", 1)[1]
    r = Fetcher(FetchOptions(UA, allow_private=False, delay=0.0)).fetch(f"http://rebind.example:{port}/")
    assert r.error == "refused_address" and server["log"] == []
    # allowed: the connection goes to the checked address, the Host header keeps the name
    server["routes"]["/robots.txt"] = (404, {}, b"")
    server["routes"]["/"] = (200, HTML, b"<p>hi</p>")
    r = fetcher().fetch(f"http://rebind.example:{port}/")
    assert r.error is None and server["log"][-1][1]["Host"] == f"rebind.example:{port}"


# ---------------------------------------------------------------- bounded decoding
def test_gzip_bomb_stops_at_the_cap_without_inflating_the_rest():
    """A 64 KiB network read of a gzip bomb is 64 MiB inflated at once by a decoder without a bound
    (httpx's): the peak memory while decoding must stay near the cap instead."""
    bomb = gzip.compress(b"a" * (64 << 20), compresslevel=9)  # 64 MiB in ~64 KiB
    d = BoundedDecoder(["gzip"], limit=1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(Failure, match="decoded body over"):
            for i in range(0, len(bomb), 65536):
                d.feed(bomb[i:i + 65536])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert d.size <= 1 << 20 and peak < 8 << 20, peak


def test_decoder_handles_deflate_raw_and_zlib_and_concatenated_gzip():
    text = b"hello world " * 1000
    raw = zlib.compressobj(wbits=-15)
    assert BoundedDecoder(["deflate"], 1 << 20).feed(raw.compress(text) + raw.flush()) == text
    assert BoundedDecoder(["deflate"], 1 << 20).feed(zlib.compress(text)) == text
    assert BoundedDecoder(["gzip"], 1 << 20).feed(gzip.compress(b"ab") + gzip.compress(b"cd")) == b"abcd"
    assert BoundedDecoder(["gzip"], 5, truncate=True).feed(gzip.compress(text)) == b"hello"
    with pytest.raises(Failure):
        BoundedDecoder(["br"], 10)


def test_bomb_and_oversized_bodies_over_http(server):
    server["routes"]["/robots.txt"] = (404, {}, b"")
    server["routes"]["/bomb"] = (200, {**HTML, "Content-Encoding": "gzip"}, gzip.compress(b"a" * (8 << 20)))
    server["routes"]["/big"] = (200, HTML, b"x" * 5000)
    f = fetcher(max_bytes=4096)
    assert f.fetch(server["base"] + "/bomb").error == "too_large"
    r = f.fetch(server["base"] + "/big")
    assert r.error == "too_large" and "Content-Length" in r.detail


# ---------------------------------------------------------------- retries and Retry-After
def test_retry_after_forms():
    now = time.time()
    assert retry_after("7", now) == 7
    assert 58 <= retry_after(formatdate(now + 60, usegmt=True), now) <= 61
    assert retry_after("soon", now) is None and retry_after(None, now) is None


def test_retry_after_is_honoured_and_a_too_long_one_gives_up(server):
    server["routes"]["/robots.txt"] = (404, {}, b"")
    server["routes"]["/busy"] = lambda n: (503, {"Retry-After": "1"}, b"") if n == 1 else (200, HTML, b"<p>ok</p>")
    server["routes"]["/never"] = (429, {"Retry-After": "3600"}, b"")
    f = fetcher(retries=2, max_retry_after=10)
    r = f.fetch(server["base"] + "/busy")
    times = [t for p, _, t in server["log"] if p == "/busy"]
    assert r.error is None and r.attempts == 2 and times[1] - times[0] >= 0.95
    r = f.fetch(server["base"] + "/never")
    assert r.error == "retry_after_too_long" and sum(p == "/never" for p, _, _ in server["log"]) == 1


def test_persistent_5xx_is_retried_then_reported(server):
    server["routes"]["/robots.txt"] = (404, {}, b"")
    server["routes"]["/down"] = (502, {}, b"")
    r = fetcher(retries=2).fetch(server["base"] + "/down")
    assert r.error == "http_502" and r.attempts == 3


def test_redirect_limit_and_no_cookies_or_credentials(server):
    server["routes"]["/robots.txt"] = (404, {}, b"")
    for i in range(4):
        server["routes"][f"/r{i}"] = (302, {"Location": f"/r{i + 1}", "Set-Cookie": "session=abc"}, b"")
    server["routes"]["/r4"] = (200, HTML, b"<p>end</p>")
    assert fetcher(max_redirects=3).fetch(server["base"] + "/r0").error == "too_many_redirects"
    r = fetcher(max_redirects=4).fetch(server["base"] + "/r0")
    assert r.error is None and r.final_url.endswith("/r4") and len(r.redirects) == 4
    assert not any("Cookie" in h or "Authorization" in h for _, h, _ in server["log"])
    assert all(h["User-Agent"] == UA for _, h, _ in server["log"])


def test_conditional_request_headers_and_304(server):
    server["routes"]["/robots.txt"] = (404, {}, b"")
    server["routes"]["/p"] = lambda n: (304, {}, b"") if n > 1 else (200, {**HTML, "ETag": '"v1"',
                                                                          "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"},
                                                                    b"<p>x</p>")
    f = fetcher()
    r1 = f.fetch(server["base"] + "/p")
    assert r1.etag == '"v1"' and r1.last_modified.startswith("Mon")
    r2 = f.fetch(server["base"] + "/p", validators={"If-None-Match": r1.etag, "If-Modified-Since": r1.last_modified})
    assert r2.status == 304 and r2.body is None
    assert server["log"][-1][1]["If-None-Match"] == '"v1"'


# ---------------------------------------------------------------- politeness
def test_one_request_at_a_time_per_host_with_the_delay_between(server):
    server["routes"]["/robots.txt"] = (404, {}, b"")
    for i in range(4):
        server["routes"][f"/p{i}"] = (200, {**HTML, "X-Sleep": 0.05}, b"<p>x</p>")
    f = fetcher(delay=0.15)
    threads = [threading.Thread(target=f.fetch, args=(server["base"] + f"/p{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    starts = sorted(t for p, _, t in server["log"] if p.startswith("/p"))
    assert server["overlap"] == 1  # never two requests in flight to one host
    assert all(b - a >= 0.19 for a, b in zip(starts, starts[1:], strict=False))  # 0.05 s answer + 0.15 s delay


def test_host_slots_wait_for_defer():
    clock = [0.0]
    slept = []
    slots = HostSlots(0.0, sleep=lambda s: (slept.append(s), clock.__setitem__(0, clock[0] + s)), clock=lambda: clock[0])
    slots.defer("h", 5.0)
    with slots.slot("h"):
        pass
    assert slept == [5.0]


def robots_for(text: str | None, status: int = 200, error: str | None = None, max_crawl_delay: float = 60.0) -> Robots:
    return Robots(UA, lambda url: (status, text.encode() if text is not None else None, error), HostSlots(0.0),
                  max_crawl_delay)


def test_robots_longest_match_rule_of_rfc_9309():
    r = robots_for("User-agent: *\nDisallow: /docs/\nAllow: /docs/public/\n")
    r.check(httpx.URL("http://h/docs/public/page"))  # the longer Allow wins (first-match parsers disagree)
    with pytest.raises(Refused, match="robots_disallowed"):
        r.check(httpx.URL("http://h/docs/private"))


def test_robots_for_our_agent_group_and_unreadable_files():
    r = robots_for("User-agent: curiosity-sft\nDisallow: /\n\nUser-agent: *\nAllow: /\n")
    with pytest.raises(Refused):
        r.check(httpx.URL("http://h/a"))
    robots_for(None, status=404).check(httpx.URL("http://h/a"))  # no robots.txt: everything allowed
    for bad in (robots_for(None, status=503), robots_for(None, error="timeout")):
        with pytest.raises(Refused, match="robots_unreachable"):  # RFC 9309 2.3.1.4: assume complete disallow
            bad.check(httpx.URL("http://h/a"))
    with pytest.raises(Refused, match="crawl_delay_too_long"):
        robots_for("User-agent: *\nCrawl-delay: 600\n", max_crawl_delay=60).check(httpx.URL("http://h/a"))
