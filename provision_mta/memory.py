"""Giving memory back to the system once a burst is over.

Python frees the buffers of ended sessions and finished deliveries, but
glibc's allocator keeps freed heap pages for reuse, so a daemon's resident
memory would stay at its peak. ``malloc_trim(0)`` returns them; it is called
when a process goes idle (no sessions, no deliveries), not per message.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None
    return trim


def give_back() -> None:
    trim = _trim()
    if trim is not None:
        trim(0)
