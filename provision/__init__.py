"""provision: declarative, batched provisioning of mail and web servers.

The public API, pinned by ``tests/test_public_api.py``. Names are imported
on first use so that ``provision --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provision.engine.runner import RunOptions, run_hosts
    from provision.errors import ProvisionError
    from provision.roles.compiler import CompiledHost, Project

__all__ = ["CompiledHost", "Project", "ProvisionError", "RunOptions", "__version__", "run_hosts"]
__version__ = "0.1.0"

_HOMES = {
    "CompiledHost": "provision.roles.compiler",
    "Project": "provision.roles.compiler",
    "ProvisionError": "provision.errors",
    "RunOptions": "provision.engine.runner",
    "run_hosts": "provision.engine.runner",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'provision' has no attribute {name!r}")
