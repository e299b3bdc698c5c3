"""A local web for the ``web ingest`` tests: two hosts on loopback serving every hostile case.

Host A (127.0.0.1) and host B (127.0.0.2) are two ``ThreadingHTTPServer``s on free ports. They log
every request (host, path, headers, time) so tests can check what was asked, when, and what
never was. Nothing here listens on or connects to anything but loopback; every handler ends on
its own (the slow page sleeps a bounded time).
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

RIVER = ("Rivers carry water from the hills to the sea, and along the way they shape the land that they cross. "
         "A young river cuts a narrow valley with steep sides, because the water moves fast and carries stones. "
         "Further down, the valley opens and the river begins to wander across a wide plain of soft mud. "
         "Each flood leaves a thin layer of silt behind, which is why the soil near a river is so rich. "
         "Farmers have settled beside rivers for thousands of years to take advantage of that fertile ground.\n\n"
         "The animals that live in a river depend on the speed and the temperature of the water. "
         "Trout need cold water with plenty of oxygen, so they are found in the fast upper reaches. "
         "Carp and catfish prefer the slow, warm water of the lower river, where plants grow thickly. "
         "Birds such as herons wait patiently at the edge of the water to catch the fish that swim past. "
         "When a dam changes the flow of a river, the whole community of plants and animals changes with it.")
LATEX = ("Every quadratic equation $ax^2 + bx + c = 0$ with $a \\neq 0$ has two solutions, which we can find by "
         "completing the square on the left-hand side of the equation.\n\n"
         "$$x = \\frac{-b \\pm \\sqrt{b^2 - 4ac}}{2a}$$\n\n"
         "The quantity \\(\\Delta = b^2 - 4ac\\) is called the discriminant of the equation. When it is positive "
         "there are two real roots, and when it is zero the two roots are equal to each other. When the "
         "discriminant is negative, the roots are complex numbers that are conjugates of each other. "
         "For example, the equation $x^2 - 5x + 6 = 0$ has the roots $2$ and $3$, because the product of the "
         "roots is $c/a = 6$ and their sum is $-b/a = 5$. "
         "Euler's identity <script type=\"math/tex\">e^{i\\pi} + 1 = 0</script> links the constants of analysis "
         "in one short line, and it is one of the most quoted results in the whole of mathematics.")
BREAD = ("Baking bread at home needs only flour, water, salt and yeast, but the result depends on time and care. "
         "The yeast feeds on the sugars in the flour and releases gas, which makes the dough rise slowly. "
         "Kneading develops the gluten, a network of proteins that traps the gas and gives the loaf its shape. "
         "A long, cool rise in the refrigerator gives the bread a deeper flavour than a quick warm one. "
         "Bakers score the top of the loaf with a sharp blade so that it can expand evenly in the hot oven. "
         "The crust browns because of reactions between sugars and proteins at high temperature.")
LIGHTHOUSE = ("Lighthouses were built to warn ships away from rocks and to guide them safely into harbour at night. "
              "Early lighthouses burned wood or coal in an open fire at the top of a tall stone tower. "
              "Later designs used oil lamps with polished mirrors that could be seen from much further away. "
              "The invention of the Fresnel lens made the beam stronger, because it bent the light into a narrow band. "
              "Each lighthouse has its own pattern of flashes so that sailors can tell which one they are looking at. "
              "Today most lighthouses are automatic, and the keepers who once lived in them have gone.")
BEES = ("Honey bees live in colonies of many thousands of workers, a few hundred drones and a single queen. "
        "The workers collect nectar and pollen from flowers and bring them back to the hive to feed the colony. "
        "A bee that finds a good patch of flowers tells the others where it is with a dance on the comb. "
        "The angle of the dance shows the direction of the flowers relative to the position of the sun. "
        "Bees turn nectar into honey by evaporating most of its water and adding enzymes from their bodies. "
        "Without bees to carry pollen, many of the fruits and vegetables that we eat would not grow at all.")
TIDES = ("Tides rise and fall twice a day on most coasts because of the pull of the moon and the sun on the oceans. "
         "The moon is much closer to the earth than the sun, so its effect on the tides is more than twice as strong. "
         "When the sun and the moon line up, at new moon and full moon, the tides are higher than usual. "
         "These are called spring tides, although they have nothing to do with the season of the same name. "
         "When the sun and the moon pull at right angles to each other, the difference between tides is smaller. "
         "People who fish or sail along the shore have to know the times of the tides to stay safe.")
FRENCH = ("Les rivières transportent l'eau des collines jusqu'à la mer et façonnent les terres qu'elles traversent. "
          "Une jeune rivière creuse une vallée étroite aux versants abrupts, car l'eau coule vite. "
          "Plus bas, la vallée s'élargit et la rivière serpente à travers une vaste plaine de boue. "
          "Chaque crue laisse une fine couche de limon, ce qui explique la richesse des sols. "
          "Les agriculteurs s'installent au bord des rivières depuis des milliers d'années pour cette raison.")
VOLCANO = ("A volcano forms where molten rock from deep inside the earth reaches the surface. "
           "The molten rock is called magma while it is underground and lava once it flows out. "
           "Some volcanoes erupt gently, with rivers of lava that move slowly down their sides. "
           "Others explode violently, throwing ash and rock high into the air for many miles. "
           "The ash can cool the climate of the whole planet for a year or more after a large eruption. "
           "Scientists watch the ground around a volcano closely, because it swells before an eruption.")


def page(title: str, body: str, chrome: str = "own") -> bytes:
    """An HTML page: the article between a menu, an ad and a footer (what extraction must drop).

    ``chrome="syndicated"`` wraps the same article in another site's menu, ad and footer: the
    near duplicate of a page that a reposting site makes."""
    paras = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
    site = "Example Media" if chrome == "own" else "Daily Reposts"
    links = ("Home", "News", "Shop", "Contact us") if chrome == "own" else ("Front page", "Trending", "Deals")
    nav = '<nav class="menu"><ul>' + "".join(f'<li><a href="/{x}">{x}</a></li>' for x in links) + "</ul></nav>"
    ad = f'<div class="advertisement">BUY CHEAP WATCHES NOW at {site}, limited offer, click here!</div>'
    footer = (f'<footer><p>Copyright 2024 {site}. All rights reserved.</p><p><a href="/privacy">Privacy '
              'policy</a> | <a href="/terms">Terms of use</a></p></footer>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="date" content="2024-05-01"></head><body>{nav}{ad}<main><article><h1>{title}</h1>{paras}'
            f'</article></main>{footer}</body></html>').encode()


@dataclass
class Request:
    host: str
    path: str
    headers: dict[str, str]
    at: float


@dataclass
class Web:
    """The two hosts; ``a``/``b`` are base URLs, ``log`` every request in arrival order."""

    a: str = ""
    b: str = ""
    log: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hits: dict[str, int] = field(default_factory=dict)
    servers: list[ThreadingHTTPServer] = field(default_factory=list)
    bomb: bytes = b""

    def paths(self, host: str | None = None) -> list[str]:
        return [r.path for r in self.log if host is None or r.host == host]

    def count(self, path: str) -> int:
        return sum(r.path == path for r in self.log)

    def urls(self) -> list[str]:
        """Every page case on both hosts (robots, sitemap and feeds aside)."""
        a = ["/articles/river.html", "/articles/latex.html", "/articles/bread.html", "/articles/lighthouse.html",
             "/private/secret.html", "/missing.html", "/flaky.html", "/slow.html", "/huge.html", "/bomb.html",
             "/file.bin", "/disguised.html", "/loop1", "/to-ftp", "/to-metadata", "/old-tides", "/french.html",
             "/short.html"]
        b = ["/articles/river-copy.html", "/articles/bees.html"]
        return [self.a + p for p in a] + [self.b + p for p in b]


def _handler(web: Web, host: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the connection closes after each answer: bodies may have no length

        def log_message(self, *args: object) -> None:
            pass

        def send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8",
                 headers: dict[str, str] | None = None, length: bool = True) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            if length:
                self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path
            with web.lock:
                web.log.append(Request(host, path, dict(self.headers.items()), time.monotonic()))
                web.hits[host + path] = web.hits.get(host + path, 0) + 1
                n = web.hits[host + path]
            base = web.a if host == "a" else web.b
            if host == "b":
                routes = {
                    "/robots.txt": lambda: self.send(200, b"User-agent: *\nCrawl-delay: 0.3\n", "text/plain"),
                    "/articles/river-copy.html": lambda: self.send(200, page("Rivers", RIVER, chrome="syndicated")),
                    "/articles/bees.html": lambda: self.send(200, page("Bees", BEES)),
                }
            else:
                sitemap = ("<?xml version='1.0' encoding='UTF-8'?><urlset xmlns='http://www.sitemaps.org/schemas/"
                           "sitemap/0.9'>" + "".join(f"<url><loc>{base}/articles/{p}.html</loc></url>"
                                                     for p in ("river", "latex", "bread")) + "</urlset>")
                index = ("<?xml version='1.0'?><sitemapindex xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
                         f"<sitemap><loc>{base}/sitemap.xml</loc></sitemap></sitemapindex>")
                rss = ("<?xml version='1.0'?><rss version='2.0'><channel><title>Blog</title><link>" + base +
                       "/</link>" + "".join(f"<item><title>{p}</title><link>{base}/articles/{p}.html</link></item>"
                                            for p in ("lighthouse", "latex")) + "</channel></rss>")
                atom = ("<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'><title>Blog"
                        f"</title><link href='{base}/feed.atom' rel='self'/>" +
                        "".join(f"<entry><title>{p}</title><link href='/articles/{p}.html'/></entry>"
                                for p in ("river", "bread")) + "</feed>")
                etag = '"bread-v1"'
                routes = {
                    "/robots.txt": lambda: self.send(200, b"User-agent: *\nDisallow: /private/\n", "text/plain"),
                    "/sitemap_index.xml": lambda: self.send(200, index.encode(), "application/xml"),
                    "/sitemap.xml": lambda: self.send(200, sitemap.encode(), "application/xml"),
                    "/feed.rss": lambda: self.send(200, rss.encode(), "application/rss+xml"),
                    "/feed.atom": lambda: self.send(200, atom.encode(), "application/atom+xml"),
                    "/articles/river.html": lambda: self.send(200, page("Rivers", RIVER)),
                    "/articles/latex.html": lambda: self.send(200, page("The quadratic formula", LATEX)),
                    "/articles/bread.html": lambda: (
                        self.send(304, b"", headers={"ETag": etag}, length=False)
                        if self.headers.get("If-None-Match") == etag
                        else self.send(200, page("Bread", BREAD), headers={"ETag": etag})),
                    "/articles/lighthouse.html": lambda: self.send(200, page("Lighthouses", LIGHTHOUSE)),
                    "/articles/tides.html": lambda: self.send(200, page("Tides", TIDES)),
                    "/private/secret.html": lambda: self.send(200, page("Secret", BEES)),
                    "/flaky.html": lambda: self.send(500, b"oops") if n == 1 else self.send(200, page("Volcanoes", VOLCANO)),
                    "/slow.html": lambda: (time.sleep(1.0), self.send(200, page("Slow", BEES))),
                    "/huge.html": lambda: self.send(200, b"<html><body><p>" + b"big " * 150_000, length=False),
                    "/bomb.html": lambda: self.send(200, web.bomb, headers={"Content-Encoding": "gzip"}),
                    "/file.bin": lambda: self.send(200, bytes(range(256)) * 4, "application/octet-stream"),
                    "/disguised.html": lambda: self.send(200, b"\x7fELF\x00\x00" + bytes(200)),
                    "/loop1": lambda: self.send(302, headers={"Location": "/loop2"}),
                    "/loop2": lambda: self.send(302, headers={"Location": base + "/loop1"}),
                    "/to-ftp": lambda: self.send(302, headers={"Location": "ftp://127.0.0.1/pub/file.txt"}),
                    "/to-metadata": lambda: self.send(302, headers={"Location": "http://169.254.169.254/latest/"}),
                    "/old-tides": lambda: self.send(301, headers={"Location": "/articles/tides.html"}),
                    "/french.html": lambda: self.send(200, page("Rivières", FRENCH)),
                    "/short.html": lambda: self.send(200, page("Hi", "Welcome to our site. Click here.")),
                }
            routes.get(path, lambda: self.send(404, b"not found"))()

    return Handler


def start_web() -> Web:
    web = Web(bomb=gzip.compress(b"<html><body><p>" + b"a" * (16 << 20), compresslevel=9))
    for name, ip in (("a", "127.0.0.1"), ("b", "127.0.0.2")):
        server = ThreadingHTTPServer((ip, 0), _handler(web, name))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        web.servers.append(server)
        setattr(web, name, f"http://{ip}:{server.server_address[1]}")
    return web


def stop_web(web: Web) -> None:
    for s in web.servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def loopback_only(monkeypatch):
    """Fail any connection attempt to an address outside 127.0.0.0/8 and ::1."""
    real = socket.socket.connect

    def guarded(self, address):  # noqa: ANN001
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (host.startswith("127.") or host in ("::1", "localhost")):
            raise AssertionError(f"test tried to connect to {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, a: (guarded(self, a), 0)[1])
