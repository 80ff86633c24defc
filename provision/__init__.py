"""provision: declarative, batched provisioning of mail and web servers.

The public API, pinned by ``tests/test_public_api.py``.
"""

from __future__ import annotations

from provision.errors import ProvisionError
from provision.project import CompiledHost, Project
from provision.runner import RunOptions, run_hosts

__all__ = ["CompiledHost", "Project", "ProvisionError", "RunOptions", "__version__", "run_hosts"]
__version__ = "0.1.0"
