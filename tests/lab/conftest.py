"""The lab fixture shared by the whole session; helpers are in tests/support/lab.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from provision.lab.lab import Lab
from tests.support.lab import NAMESPACE, SUITE, engine_ready


@pytest.fixture(scope="session")
def example_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Three hosts named as in inventories/example (example-1..3)."""
    engine_ready()
    lab = Lab("example", root=tmp_path_factory.mktemp("lab"), namespace=NAMESPACE)
    lab.up(3, say=lambda text: None, suites=SUITE)
    yield lab
    lab.down()
