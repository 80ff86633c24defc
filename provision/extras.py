"""Libraries that only some commands need, and the extra that installs each.

``provision[lab]`` brings the docker SDK (the lab and ``connection:
docker``); ``provision[mta]`` brings aiosmtpd (the built-in MTA on the
controller). A command that needs one that is missing says which extra to
install, in one line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from provision.errors import ProvisionError

EXTRAS = {"docker": "lab", "aiosmtpd": "mta"}


class MissingExtra(ProvisionError):
    """A library of an optional extra that is not installed."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or say which extra to install for ``purpose``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise
        raise MissingExtra(f"{purpose} needs the Python library {exc.name}: pip install 'provision[{EXTRAS[exc.name]}]'") from None
