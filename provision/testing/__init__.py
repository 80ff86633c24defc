"""Test helpers for code that uses provision (as ``fabric.testing``): an
in-memory host that runs the real agent against a temporary root folder."""

from provision.testing.fake import FakeConnector, Responder

__all__ = ["FakeConnector", "Responder"]
