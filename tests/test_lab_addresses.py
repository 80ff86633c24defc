"""The lab puts its hosts' addresses on lo, and a second `lab up` (or a matrix step
after another) finds them already there. Needs root and iproute2, as the lab does."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from provision.lab.docker import LabError
from provision.lab.lab import add_loopback_address, on_loopback

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2")

ADDRESS = "127.94.250.7"


@pytest.fixture
def address() -> Iterator[str]:
    subprocess.run(["ip", "addr", "del", f"{ADDRESS}/32", "dev", "lo"], capture_output=True, check=False)
    yield ADDRESS
    subprocess.run(["ip", "addr", "del", f"{ADDRESS}/32", "dev", "lo"], capture_output=True, check=False)


def test_an_address_already_on_lo_is_taken_as_it_is(address: str) -> None:
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    add_loopback_address(address)
    assert on_loopback(address)


def test_a_missing_address_is_added_once(address: str) -> None:
    assert not on_loopback(address)
    add_loopback_address(address)
    add_loopback_address(address)
    shown = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo", "to", f"{address}/32"], capture_output=True, text=True, check=True)
    assert len(shown.stdout.splitlines()) == 1


def test_an_address_ip_refuses_is_a_lab_error() -> None:
    with pytest.raises(LabError, match=r"cannot add 127\.94\.250\.999 to lo"):
        add_loopback_address("127.94.250.999")
