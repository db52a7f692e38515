"""May the server call this webhook URL? Refuse anything that reaches inside the network.

A webhook URL comes from an API caller, and the server calls it: without these checks a rule
could make the server talk to its cloud metadata service (169.254.169.254), to a database on
loopback, or to the private network. Every address a host name resolves to must be public, or
be exempted with `driftgate serve --webhook-allow HOST_OR_CIDR`.

Numeric host spellings that C resolvers accept but look harmless to string checks (2130706433,
0x7f000001, 0177.0.0.1, 127.1) are refused outright: a client may read them differently from us.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from driftgate.errors import BadRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]

ALLOW_HINT = "pass --webhook-allow to permit it"
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_CANONICAL_PART = re.compile(r"^(0|[1-9][0-9]{0,2})$")


class WebhookRefused(BadRequest):
    """The URL may not be called; the message names the address and the reason."""


@dataclass(frozen=True)
class AllowList:
    """`--webhook-allow` entries: host names (matched exactly) and networks (a bare IP is a /32 or /128)."""

    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AllowList:
        hosts: set[str] = set()
        networks = []
        for entry in entries:
            item = entry.strip().lower().strip("[]")
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def covers(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def system_resolver(host: str) -> list[str]:
    """Every address `host` resolves to (A and AAAA)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookRefused(f"webhook host {host!r} does not resolve ({exc})", field="notify") from None
    return sorted({str(info[4][0]).split("%", 1)[0] for info in infos})


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if address in IPV4_COMPATIBLE and int(address) > 1:
            return "an IPv4-compatible IPv6 address"
        # Translation prefixes carry an IPv4 address that the gateway will reach: judge that one.
        embedded = None
        if address in NAT64:
            embedded, via = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
        elif address.sixtofour is not None:
            embedded, via = address.sixtofour, "6to4"
        if embedded is not None:
            inner = refusal(embedded)
            return f"a {via} address embedding {embedded}, which is {inner}" if inner else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "shared address space (CGNAT 100.64.0.0/10)"
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "a unique local address (fc00::/7)"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally reachable"
    return None


def _part_value(part: str) -> int:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if part.startswith("0") and len(part) > 1:
        return int(part, 8) if set(part) <= set("01234567") else -1
    return int(part)


def _numeric_ipv4(host: str) -> str | None:
    """For a host written as numbers (inet_aton style), the address it means, else None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    values = [_part_value(p) for p in parts]
    # inet_aton: the last part fills the bytes that remain (127.1 is 127.0.0.1, 2130706433 is too).
    number = 0
    for value in values[:-1]:
        number = (number << 8) | (value & 0xFF)
    number = (number << (8 * (5 - len(parts)))) | (values[-1] & ((1 << (8 * (5 - len(parts)))) - 1))
    return str(ipaddress.IPv4Address(number & 0xFFFFFFFF))


def target_of(url: str) -> str:
    """What logs and delivery records show of a webhook URL: `scheme://host`."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme.lower()}://{f'[{host}]' if ':' in host else host}"


def host_of(url: str) -> tuple[str, str]:
    """(scheme, host) of a webhook URL, refusing what no webhook needs and what parsers disagree on."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        raise WebhookRefused("webhook URL must be a plain http(s) URL without spaces or backslashes", field="notify")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookRefused(f"webhook URL scheme must be http or https, got {scheme or 'none'!r}", field="notify")
    if "@" in parts.netloc:
        raise WebhookRefused("webhook URL must not carry user info (user:password@)", field="notify")
    host = (parts.hostname or "").lower()
    if not host:
        raise WebhookRefused(f"webhook URL has no host: {url!r}", field="notify")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise WebhookRefused("webhook URL has an invalid port", field="notify") from None
    if not host.isascii():
        raise WebhookRefused(
            f"webhook host {host!r} must be ASCII; write it in its xn-- (punycode) form", field="notify"
        )
    return scheme, host


def check_url(url: str, allow: AllowList | Sequence[str] = (), resolve: Resolver = system_resolver) -> list[str]:
    """Raise `WebhookRefused` unless `url` may be called; returns the addresses it was judged on."""
    allowed = allow if isinstance(allow, AllowList) else AllowList.parse(allow)
    _, host = host_of(url)
    if host in allowed.hosts:
        return []
    if host.endswith("."):
        raise WebhookRefused(f"webhook host {host!r} ends with a dot; write it without", field="notify")
    if "%" in host:
        raise WebhookRefused(f"webhook host {host!r} carries an IPv6 zone id", field="notify")
    numeric = _numeric_ipv4(host)
    if numeric is not None and not (
        len(host.split(".")) == 4 and all(_CANONICAL_PART.match(p) for p in host.split("."))
    ):
        raise WebhookRefused(
            f"webhook host {host!r} is a non-canonical IPv4 form of {numeric}; write it as four decimal numbers",
            field="notify",
        )
    if host == "localhost" or host.endswith(".localhost"):
        # RFC 6761: these names are loopback whatever DNS says; judge them without asking it.
        addresses = ["127.0.0.1", "::1"]
    else:
        try:
            addresses = [str(ipaddress.ip_address(host))]
        except ValueError:
            addresses = resolve(host)
    if not addresses:
        raise WebhookRefused(f"webhook host {host!r} resolves to no address", field="notify")
    for text in addresses:
        address = ipaddress.ip_address(text)
        if allowed.covers(address):
            continue
        reason = refusal(address)
        if reason is not None:
            shown = text if text == host else f"{host} ({text})"
            raise WebhookRefused(f"{shown} is {reason}; {ALLOW_HINT}", field="notify", address=text)
    return addresses
