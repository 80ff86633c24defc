"""Writing the files a test needs."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(path: Path, text: str, mode: int | None = None) -> Path:
    """``text`` (dedented, leading newlines dropped) into ``path``, its folders made; ``mode`` if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    if mode is not None:
        path.chmod(mode)
    return path
