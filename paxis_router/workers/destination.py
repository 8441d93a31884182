"""Where a tier's calls go: derived from the host its URL names, never assumed.

A tier that connects to a URL is ``"local"`` only when that URL's host is a loopback address
(``127.0.0.0/8``, ``::1``, ``localhost``) or a host the operator declared on-premises; any other
host is ``"remote:<host>"``. The declaration (:class:`OnPremises`, a gate policy's
``on_premises_hosts``) lists exact host names, IP addresses or networks in CIDR form, and domain
suffixes written with a leading dot (``.corp.example`` = every name under ``corp.example``).

Names are never resolved through DNS: the decision is made on the name or IP literal as written,
because what a name resolves to can change after the check (DNS rebinding, a moved record). A
host name is on-premises only when it is declared by name; an IP literal only when it falls in a
declared network. ``10.0.0.0/8`` therefore covers ``http://10.1.2.3`` but not
``http://gpu01.corp.example`` even when that name resolves to 10.1.2.3 — declare the name too.

Example:
    >>> premises = OnPremises.parse(["10.0.0.0/8", ".corp.example", "gpu-box"])
    >>> destination_for_url("http://127.0.0.1:8000/v1"), destination_for_url("http://gpu-box/v1")
    ('local', 'remote:gpu-box')
    >>> destination_for_url("http://gpu-box/v1", premises)
    'local'
    >>> destination_for_url("https://vllm.corp.example.evil.com/v1", premises)
    'remote:vllm.corp.example.evil.com'
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterable

LOCAL = "local"
"""The destination of a tier whose calls stay on the premises."""

REMOTE_PREFIX = "remote:"
"""The prefix of a derived off-premises destination: ``remote:<host>``."""

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def url_host(url: str) -> str | None:
    """The host a URL connects to, lower-cased, without brackets or a trailing dot; None when
    the URL names no host.

    Example:
        >>> url_host("http://[::1]:8000/v1"), url_host("https://API.Example.com./v1")
        ('::1', 'api.example.com')
    """
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.rstrip(".").lower() or None


@functools.lru_cache(maxsize=1024)  # a ladder's few hosts, checked before every call
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (``127.0.0.0/8``, ``::1``, and
    ``::ffff:127.x.x.x``). Other names are not resolved, so they are not loopback.

    Example:
        >>> is_loopback("127.0.0.2"), is_loopback("localhost"), is_loopback("my-laptop")
        (True, True, False)
    """
    host = host.rstrip(".").lower()
    if host == "localhost":
        return True
    address = _ip(host)
    return address is not None and address.is_loopback


@dataclass(frozen=True)
class OnPremises:
    """Hosts declared on the premises: exact names, IP networks, and domain suffixes.

    Build it with :meth:`parse`; :meth:`contains` decides on the name as written (no DNS).
    """

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> OnPremises:
        """Parse declared entries; raises ValueError naming the first one that is none of a host
        name, an IP address, a CIDR network or a ``.suffix``.

        Example:
            >>> OnPremises.parse(["10.0.0.0/8"]).contains("10.20.30.40")
            True
        """
        names: set[str] = set()
        networks: list[IPNetwork] = []
        suffixes: list[str] = []
        for raw in entries:
            entry = str(raw).strip().rstrip(".").lower()
            if entry.startswith("*."):
                entry = entry[1:]
            bad = ValueError(
                f"on-premises entry {raw!r} is not a host name, an IP address, a CIDR network "
                "(10.0.0.0/8) or a domain suffix (.corp.example)"
            )
            if "/" in entry or _ip(entry) is not None:
                try:
                    networks.append(ipaddress.ip_network(entry.split("%", 1)[0], strict=False))
                except ValueError:
                    raise bad from None
                continue
            label = entry.removeprefix(".")
            if not label or not all(_host_label(part) for part in label.split(".")):
                raise bad
            if entry.startswith("."):
                suffixes.append(entry)
            else:
                names.add(entry)
        return cls(frozenset(names), tuple(networks), tuple(suffixes))

    def contains(self, host: str) -> bool:
        """True when ``host`` (a name or an IP literal) is declared on the premises."""
        host = host.rstrip(".").lower()
        address = _ip(host)
        if address is not None:
            return any(address.version == n.version and address in n for n in self.networks)
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def __bool__(self) -> bool:
        return bool(self.names or self.networks or self.suffixes)


def _host_label(label: str) -> bool:
    return 0 < len(label) <= 63 and all(ch.isalnum() or ch in "-_" for ch in label)


def host_on_premises(host: str, on_premises: OnPremises | None = None) -> bool:
    """True when calls to ``host`` stay on the premises: loopback, or declared."""
    return is_loopback(host) or (on_premises is not None and on_premises.contains(host))


def destination_for_url(url: str, on_premises: OnPremises | None = None) -> str:
    """``"local"`` when ``url``'s host is loopback or declared on-premises, else
    ``"remote:<host>"`` (``"remote:?"`` for a URL without a host)."""
    host = url_host(url)
    if host is None:
        return f"{REMOTE_PREFIX}?"
    return LOCAL if host_on_premises(host, on_premises) else f"{REMOTE_PREFIX}{host}"
