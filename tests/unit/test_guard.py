"""Who may reach a process (nbzx/common/guard.py): the source of a request behind proxies, and the
config that names networks and rates. The HTTP answers are in test_receiver_app and test_console_app."""

from __future__ import annotations

import pytest

from nbzx.common.config import ConfigError
from nbzx.common.guard import in_any, networks, source
from tests.conftest import make_config

pytestmark = pytest.mark.unit

PROXIES = networks(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),  # no proxy
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # an untrusted peer cannot name another source
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),  # our proxy says who it saw
        ("10.0.0.5", "192.0.2.66, 198.51.100.1, 10.0.0.4", "198.51.100.1"),  # the client wrote the first
        ("10.0.0.5", "10.0.0.3, 10.0.0.4", "10.0.0.3"),  # only proxies: the first of them
        ("fd00::5", "2001:db8::7", "2001:db8::7"),
        ("10.0.0.5", "", "10.0.0.5"),
        (None, "198.51.100.1", None),
    ],
)
def test_the_source_is_the_last_address_no_trusted_proxy_added(
    peer: str | None, forwarded: str | None, expected: str | None
) -> None:
    assert source(peer, forwarded, PROXIES) == expected


def test_an_address_is_in_a_network_only_when_it_parses() -> None:
    nets = networks(["192.0.2.0/24", "2001:db8::1"])
    assert in_any("192.0.2.200", nets) and in_any("2001:db8::1", nets)
    assert not in_any("192.0.3.1", nets) and not in_any("not-an-ip", nets) and not in_any(None, nets)
    assert not in_any("192.0.2.1", ())


@pytest.mark.parametrize(
    ("section", "access", "message"),
    [
        ("receiver", {"allow_from": ["10.0.0.0/33"]}, "receiver.access: allow_from: '10.0.0.0/33' is not a network"),
        ("console", {"trusted_proxies": ["proxy"]}, "console.access: trusted_proxies: 'proxy' is not a network"),
        ("receiver", {"rate_limit": "lots"}, "receiver.access: rate_limit: 'lots' is not a rate"),
    ],
)
def test_a_bad_network_or_rate_names_its_key(section: str, access: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(**{section: {"access": access}})


def test_defaults_limit_a_flood_of_webhooks_and_guessing_at_sign_in() -> None:
    cfg = make_config(receiver={"access": {"allow_from": ["10.0.0.0/8"]}})
    assert cfg.receiver.access.rate_limit == "1000/second"  # kept when only the allow-list is given
    assert cfg.console.access.rate_limit == "10/minute"
    assert cfg.receiver.access.trusted_proxies == [] and cfg.console.access.allow_from == []
