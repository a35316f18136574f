"""Where paywarden may send webhooks: http(s) URLs whose host resolves only to public addresses.

A webhook endpoint URL is chosen by a tenant, so without this guard a tenant could make paywarden
post to its own machine, its private network or a cloud metadata service (SSRF). The URL is checked
when it is registered and again right before every delivery (a DNS answer can change), and the
delivery connects to the very address that was checked, so a second lookup cannot swap it.
PAYWARDEN_ALLOW_PRIVATE_WEBHOOK_URLS=true lifts the address rule for tests and local development.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from server.errors import UnsafeWebhookUrl

MAX_URL_LENGTH = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """How to reach a checked URL: connect to `url` (the checked address in place of the host name) and
    say who we meant in the Host header and, for https, in TLS (SNI and certificate checks)."""

    url: httpx.URL
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


def check_form(url: str) -> str:
    """The URL if it is an absolute http(s) URL with a host and no credentials; UnsafeWebhookUrl otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise UnsafeWebhookUrl(f"{url!r} is not a URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookUrl(f"{url!r} is not an http(s) URL with a host, such as https://example.com/webhooks.")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("The URL must not carry a user name or password; authenticate with the signature.")
    return url


async def check(url: str, *, allow_private: bool) -> list[IpAddress]:
    """The addresses the URL's host resolves to, all of them public (unless private ones are allowed);
    UnsafeWebhookUrl when the URL is malformed, does not resolve, or reaches a non-public address."""
    check_form(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    addresses = await _resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    refused = [address for address in addresses if not is_public(address)]
    if refused and not allow_private:
        raise UnsafeWebhookUrl(
            f"{host} resolves to {refused[0]}, a loopback, private, link-local or otherwise non-public address; "
            "paywarden sends webhooks only to public addresses (PAYWARDEN_ALLOW_PRIVATE_WEBHOOK_URLS=true allows "
            "others, for local development)."
        )
    return addresses


async def target(url: str, *, allow_private: bool) -> Target:
    """Where to connect for this delivery, checked now."""
    addresses = await check(url, allow_private=allow_private)
    if allow_private:
        return Target(httpx.URL(url))
    parts = urlsplit(url)
    pinned = httpx.URL(url).copy_with(host=str(addresses[0]))
    extensions = {"sni_hostname": parts.hostname or ""} if parts.scheme == "https" else {}
    return Target(pinned, {"Host": parts.netloc}, extensions)


def is_public(address: IpAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local (cloud metadata at 169.254.169.254),
    shared, reserved, multicast or unspecified — also when written as an IPv4-mapped IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def _resolve(host: str, port: int) -> list[IpAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeWebhookUrl(f"{host} does not resolve to an address; check the URL's host name.") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    return list(dict.fromkeys(addresses))
