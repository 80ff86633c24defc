"""The extra address is on the interface after converge, and ifupdown would bring it back at boot.

Runs under ``provision test addresses`` (testinfra's docker:// backend). Lab
hosts share the machine's network: the address is removed from the machine's
lo at the end (the lab removes only its own addresses).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

MANAGED = "/etc/network/interfaces.d/provision-addresses"


@pytest.fixture(scope="module")
def extra(host: Any) -> Iterator[str]:
    """The declared address (ADDRESS/32), read from the file the role wrote."""
    lines = host.file(MANAGED).content_string.splitlines()
    (address,) = [line.split()[1] for line in lines if line.strip().startswith("address ")]
    yield address
    host.run(f"ip addr del {address} dev lo")


def on_lo(host: Any, address: str) -> bool:
    return f"inet {address} " in host.check_output("ip -o -4 addr show dev lo")


def test_the_address_is_on_the_interface(host: Any, extra: str) -> None:
    assert on_lo(host, extra)
    assert host.run("provision-addresses check").rc == 0


def test_the_address_persists_for_ifupdown(host: Any, extra: str) -> None:
    # ifupdown's own parser, as it reads the files at boot: /etc/network/interfaces sources interfaces.d.
    query = host.run("ifquery lo")
    assert query.rc == 0 and f"address: {extra.split('/')[0]}" in query.stdout.splitlines(), query.stdout + query.stderr
    assert host.file(MANAGED).mode == 0o644


def test_an_address_gone_is_said_and_applied_again(host: Any, extra: str) -> None:
    """What the handler does when the file changes: the address is added with ip, no network restart."""
    host.check_output(f"ip addr del {extra} dev lo")
    missing = host.run("provision-addresses check")
    assert missing.rc == 1 and f"{extra} on lo" in missing.stdout
    assert f"ip addr add {extra} dev lo" in host.check_output("provision-addresses apply")
    assert on_lo(host, extra)
