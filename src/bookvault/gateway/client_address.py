"""Who the client is, from the socket unless the peer is a trusted proxy.

`X-Forwarded-For` is written by whoever sends it, so it is believed only as far
as a chain of trusted proxies vouches for it: starting at the socket peer and
walking the list right to left, the first address that is not a trusted proxy
is the client. Entries left of it are whatever the client claimed and never
change its identity, so rotating them cannot dodge a per-client limit.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["ClientAddress", "TrustedProxies"]

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True, slots=True)
class ClientAddress:
    client: str
    # The part of the forwarding chain the gateway can vouch for, left to right,
    # ending with the socket peer: what the upstream receives as X-Forwarded-For.
    forwarded_for: str
    peer_trusted: bool


class TrustedProxies:
    __slots__ = ("_networks",)

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks: tuple[_IPNetwork, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in networks
        )

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def resolve(self, peer: str, forwarded_for: Sequence[bytes]) -> ClientAddress:
        """The client behind `peer`, given the request's X-Forwarded-For values."""
        if not self._networks or not self.trusts(peer):
            return ClientAddress(client=peer, forwarded_for=peer, peer_trusted=False)
        hops = [
            hop.strip()
            for value in forwarded_for
            for hop in value.decode("latin-1").split(",")
            if hop.strip()
        ]
        vouched = [peer]
        for hop in reversed(hops):
            address = _plain_address(hop)
            if address is None:
                # A trusted proxy would not write garbage; stop at the nearest hop we can vouch for.
                break
            vouched.append(address)
            if not self.trusts(address):
                break
        return ClientAddress(
            client=vouched[-1], forwarded_for=", ".join(reversed(vouched)), peer_trusted=True
        )


def _plain_address(hop: str) -> str | None:
    """`hop` as a normalised IP address (brackets and ports removed), or None."""
    candidate = hop
    if candidate.startswith("["):  # "[2001:db8::1]:443"
        candidate = candidate[1 : candidate.find("]")] if "]" in candidate else candidate
    elif candidate.count(":") == 1:  # "203.0.113.7:443"
        candidate = candidate.partition(":")[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
