"""Which URLs and addresses the crawler may touch, checked before connecting and at connect time.

A URL from a list, a sitemap, a feed or a redirect is attacker-controlled: it may point at the
machine itself, the office network or the cloud metadata service that hands out credentials
(server-side request forgery). So:

- only ``http`` and ``https``, no user name or password in the URL (httpx would send them);
- the host is resolved and **every** address it resolves to must be public; loopback, private,
  link-local, shared (CGNAT) and unique-local addresses are refused unless
  ``allow_private`` (intranets, tests on 127.0.0.1);
- metadata endpoints, unspecified (``0.0.0.0`` reaches localhost), multicast, broadcast and
  reserved addresses are refused even with ``allow_private``: no crawl needs them.

The check runs before each request (``check_url``: a clear reason in ``dropped.jsonl``) and again
inside the connection itself (``GuardedBackend``): the socket connects only to the address that
was checked, so a DNS answer that changes between the check and the connect (DNS rebinding)
cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

SCHEMES = ("http", "https")
# AWS/GCP/Azure/OpenStack (169.254.169.254), AWS IPv6 (fd00:ec2::254), Alibaba (100.100.100.200).
METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """A URL or address the safety rules do not allow; ``reason`` goes to ``dropped.jsonl``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def address_problem(ip: Address, allow_private: bool) -> str | None:
    """Why ``ip`` may not be contacted, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip in METADATA:
        return "cloud metadata address"
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved or ip == ipaddress.ip_address("255.255.255.255"):
        return "unspecified, multicast or reserved address"
    local = ip.is_loopback or ip.is_private or ip.is_link_local or (
        isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    if local and not allow_private:
        return "loopback, private or link-local address (--allow-private-addresses to allow)"
    if not local and not ip.is_global:
        return "non-global address"
    return None


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise httpx.ConnectError(f"cannot resolve {host}: {e}") from None
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def checked_addresses(host: str, port: int, allow_private: bool) -> list[Address]:
    """The addresses to connect to; ``Refused`` if any address of ``host`` is not allowed."""
    addresses = resolve(host, port)
    for ip in addresses:
        problem = address_problem(ip, allow_private)
        if problem is not None:
            raise Refused("refused_address", f"{host} -> {ip}: {problem}")
    return addresses


def check_url(url: str | httpx.URL, allow_private: bool) -> httpx.URL:
    """The parsed URL if the crawler may request it; ``Refused`` (with the reason) otherwise."""
    try:
        u = httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError, ValueError) as e:
        raise Refused("bad_url", f"{url}: {e}") from None
    if u.scheme not in SCHEMES:
        raise Refused("bad_scheme", f"{u.scheme or '(none)'}: only http and https are fetched")
    if not u.host:
        raise Refused("bad_url", f"{url}: no host")
    if u.userinfo:
        raise Refused("credentials_in_url", "URLs with a user name or password are not fetched")
    checked_addresses(u.host, u.port or (443 if u.scheme == "https" else 80), allow_private)
    return u


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses ``address_problem`` allows."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        last: Exception | None = None
        for ip in checked_addresses(host, port, self.allow_private):
            try:  # connect to the checked address itself, not to the name (which could resolve anew)
                return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)
            except httpcore.ConnectError as e:
                last = e
        raise last or httpcore.ConnectError(f"no address for {host}")


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connection pool uses ``GuardedBackend``.

    httpx does not forward httpcore's ``network_backend`` argument, so the pool is rebuilt here
    with the same settings; no proxy and no environment (``trust_env=False``): a proxy would
    connect on our behalf to addresses we never check, and ``.netrc`` would add credentials.
    """

    def __init__(self, allow_private: bool) -> None:
        limits = httpx.Limits(max_connections=64)
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private),
        )
