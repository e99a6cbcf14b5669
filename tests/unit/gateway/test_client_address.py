import pytest

from bookvault.gateway.client_address import TrustedProxies

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])


def test_without_trusted_proxies_the_socket_peer_is_the_client() -> None:
    address = TrustedProxies([]).resolve("198.51.100.4", [b"203.0.113.9"])
    assert address.client == "198.51.100.4"
    assert address.forwarded_for == "198.51.100.4"
    assert not address.peer_trusted


def test_an_untrusted_peer_cannot_claim_another_address() -> None:
    address = PROXIES.resolve("198.51.100.4", [b"10.1.1.1, 203.0.113.9"])
    assert address.client == "198.51.100.4"
    assert address.forwarded_for == "198.51.100.4"


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() -> None:
    address = PROXIES.resolve("10.0.0.5", [b"203.0.113.9, 198.51.100.4, 10.2.2.2"])
    assert address.client == "198.51.100.4"
    # Only the vouched-for part of the chain is passed on; the spoofable left part is dropped.
    assert address.forwarded_for == "198.51.100.4, 10.2.2.2, 10.0.0.5"
    assert address.peer_trusted


@pytest.mark.parametrize("claimed", ["1.1.1.1", "8.8.8.8, 9.9.9.9", "garbage", ""])
def test_rotating_the_claimed_part_never_changes_the_client(claimed: str) -> None:
    values = [claimed.encode(), b"198.51.100.4"] if claimed else [b"198.51.100.4"]
    assert PROXIES.resolve("10.0.0.5", values).client == "198.51.100.4"


def test_several_forwarded_for_headers_read_as_one_list() -> None:
    address = PROXIES.resolve("10.0.0.5", [b"203.0.113.9", b"10.3.3.3"])
    assert address.client == "203.0.113.9"


def test_when_every_hop_is_trusted_the_farthest_one_is_the_client() -> None:
    assert PROXIES.resolve("10.0.0.5", [b"10.9.9.9, 10.8.8.8"]).client == "10.9.9.9"
    assert PROXIES.resolve("10.0.0.5", []).client == "10.0.0.5"


def test_garbage_written_after_a_trusted_hop_stops_the_walk_there() -> None:
    assert PROXIES.resolve("10.0.0.5", [b"198.51.100.4, not-an-ip"]).client == "10.0.0.5"


def test_ipv6_and_ports_are_understood() -> None:
    assert PROXIES.resolve("2001:db8::1", [b"[2001:0db8:0:0::7]:443"]).client == "2001:db8::7"
    assert PROXIES.resolve("2001:db8::1", [b"203.0.113.9:5000"]).client == "203.0.113.9"
    assert PROXIES.resolve("2001:db8::1", [b"2606:4700::1111"]).client == "2606:4700::1111"
