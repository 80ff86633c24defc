"""The roles and templates that ship with provision, wherever it is installed.

In the repository they stand at the top (``roles/``, ``templates/``: that
layout is part of what this project is); a wheel carries them as package
data under ``provision/bundled/``. Installed from a wheel they are read with
``importlib.resources``; in a checkout (an editable install) from the
checkout itself.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def bundled_dir(name: str) -> Path:
    """``roles`` or ``templates``: a real folder (Jinja and the role loader read files by path)."""
    packaged = files("provision") / "bundled" / name
    if packaged.is_dir():
        return Path(str(packaged))
    return _CHECKOUT / name


def roles_dir() -> Path:
    return bundled_dir("roles")


def templates_dir() -> Path:
    return bundled_dir("templates")


def checkout_dir() -> Path | None:
    """The repository this provision runs from, if it runs from one (its molecule/ scenarios)."""
    return _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "roles").is_dir() else None
