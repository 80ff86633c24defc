"""The lab on a bad day: an `up` that fails half way leaves nothing `lab down` cannot take away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provision.lab.docker import LabError
from provision.lab.lab import Lab, on_loopback
from tests.support.lab import NAMESPACE, engine_ready

pytestmark = pytest.mark.lab


def test_a_lab_whose_up_failed_half_way_is_taken_down_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine_ready()
    lab = Lab("halfup", root=tmp_path, namespace=NAMESPACE)

    def container_that_does_not_start(self: Lab, image: str, host: Any, public_key: str) -> None:
        raise LabError(f"container {host.container} did not start")

    # After its addresses are on lo, the host's container fails to start.
    monkeypatch.setattr(Lab, "_start_container", container_that_does_not_start)
    try:
        with pytest.raises(LabError, match="did not start"):
            lab.up(names=["halfup-1"], say=lambda text: None)
        [host] = lab.hosts()
        added = [host.address, *host.extra_addresses]
        assert all(on_loopback(address) for address in added)
    finally:
        removed = lab.down()
    assert not any(on_loopback(address) for address in added)
    assert {f"address {address}/32 from lo" for address in added} <= set(removed)
