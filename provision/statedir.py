"""Where provision keeps what it must find again from any folder: the run log
and the labs.

``$PROVISION_STATE_DIR`` when set, else ``$XDG_STATE_HOME/provision``, else
``~/.local/state/provision`` (the XDG base directory specification's place
for state that outlives a run but is not configuration).
"""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    override = os.environ.get("PROVISION_STATE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_STATE_HOME")
    # The specification says a relative path there is invalid and is to be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "provision"


def private_dir(path: Path) -> Path:
    """``path`` made if missing, readable by its owner only (it holds lab keys and run records)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
