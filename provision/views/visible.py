"""Text from hosts and DNS, made harmless for a terminal.

Rich's ``Text`` keeps markup literal, but it passes control characters
through (it drops only BEL, BS, VT, FF and CR): an ESC in a TXT record, a
PTR-less error message or a host's answer reaches the terminal as an escape
sequence, which can clear the screen, retitle the window or hide the text
after it. Each such character is shown as ``\\xNN`` instead. Tabs and
newlines are kept: rich lays them out.
"""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls but TAB and LF, DEL, and the C1 controls (U+009B is a CSI on some terminals).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """``text`` with every control character written as \\xNN."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", text)


def visible_text(cell: Text) -> Text:
    """A cell as it may be printed: unchanged when it holds no control character,
    else its plain text made visible in the cell's own style."""
    if not _CONTROL.search(cell.plain):
        return cell
    return Text(visible(cell.plain), style=cell.style, justify=cell.justify, overflow=cell.overflow)
