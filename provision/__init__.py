"""provision: declarative, batched provisioning of mail and web servers.

The public API, pinned by ``tests/test_public_api.py``. Names are imported
on first use so that ``provision --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provision.errors import ProvisionError
    from provision.project import CompiledHost, Project
    from provision.runner import RunOptions, run_hosts

__all__ = ["CompiledHost", "Project", "ProvisionError", "RunOptions", "__version__", "run_hosts"]
__version__ = "0.1.0"

_HOMES = {
    "CompiledHost": "provision.project",
    "Project": "provision.project",
    "ProvisionError": "provision.errors",
    "RunOptions": "provision.runner",
    "run_hosts": "provision.runner",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'provision' has no attribute {name!r}")
