"""Which address is the client: the peer, or a trusted proxy's X-Forwarded-For."""

from __future__ import annotations

import pytest

from bot.web.proxy import forwarded_client, parse_networks

PROXIES = parse_networks("10.0.0.0/8, ::1")


@pytest.mark.parametrize(
    "peer, header, client",
    [
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # an untrusted peer: the header is ignored
        ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # prepended lies are skipped
        ("10.0.0.2", "198.51.100.7, 10.0.0.3", "198.51.100.7"),  # two trusted hops
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "garbage, 198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "198.51.100.7, garbage", "10.0.0.2"),  # a malformed hop stops the walk
        ("::1", "[2001:db8::5]:4711", "2001:db8::5"),
        ("10.0.0.2", "198.51.100.7:5555", "198.51.100.7"),
    ],
)
def test_the_client_is_the_right_most_untrusted_forwarded_address(peer, header, client):
    assert forwarded_client(peer, header, PROXIES) == client


def test_no_trusted_proxies_means_the_peer_always():
    assert forwarded_client("127.0.0.1", "1.2.3.4", ()) == "127.0.0.1"


def test_a_malformed_trusted_proxy_setting_is_refused():
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        parse_networks("10.0.0.0/8, proxy.local")
