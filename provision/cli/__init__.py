"""The ``provision`` command: one module per command group; the library never imports this package."""

from provision.cli.main import main

__all__ = ["main"]
