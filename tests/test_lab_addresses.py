"""The lab puts its hosts' addresses on lo, and a second `lab up` (or a matrix step
after another) finds them already there. Needs root and iproute2, as the lab does."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from provision.lab.docker import LabError
from provision.lab.lab import add_loopback_address, on_loopback, remove_loopback_address
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2")

ADDRESS = "127.94.250.7"


@pytest.fixture
def address() -> Iterator[str]:
    subprocess.run(["ip", "addr", "del", f"{ADDRESS}/32", "dev", "lo"], capture_output=True, check=False)
    yield ADDRESS
    subprocess.run(["ip", "addr", "del", f"{ADDRESS}/32", "dev", "lo"], capture_output=True, check=False)


def test_an_address_already_on_lo_is_taken_as_it_is(address: str) -> None:
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    assert add_loopback_address(address) is False  # not this caller's to remove
    assert on_loopback(address)


def test_a_sink_leaves_on_lo_an_address_it_did_not_add(address: str) -> None:
    """A test's SMTP sink on a lab host's address must not take that address away when it ends."""
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    with SmtpSink(address, 2599):
        pass
    assert on_loopback(address)
    assert remove_loopback_address(address) is True
    with SmtpSink(address, 2599):
        assert on_loopback(address)
    assert not on_loopback(address)  # the one it added, it removes


def test_a_missing_address_is_added_and_a_second_call_finds_it(address: str) -> None:
    assert not on_loopback(address)
    assert add_loopback_address(address) is True
    assert add_loopback_address(address) is False
    assert on_loopback(address)


def test_an_address_ip_refuses_is_a_lab_error() -> None:
    with pytest.raises(LabError, match=r"cannot add 127\.94\.250\.999 to lo"):
        add_loopback_address("127.94.250.999")
