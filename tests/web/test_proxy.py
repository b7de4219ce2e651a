"""Which address is the client: the peer, or a trusted proxy's X-Forwarded-For."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from bot.web.proxy import forwarded_client, forwarded_headers, parse_networks

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


async def test_every_forwarded_for_line_is_read_not_only_the_client_written_first():
    # HAProxy's `option forwardfor` adds its own line after the client's (a forged one)
    seen = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.remote)
        return web.Response()

    headers = CIMultiDict([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7")])
    request = make_mocked_request("GET", "/", headers=headers)
    request = request.clone(remote="10.0.0.2")
    await forwarded_headers(PROXIES)(request, handler)
    assert seen == ["198.51.100.7"]
