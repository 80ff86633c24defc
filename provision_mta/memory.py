"""Giving memory back to the system once a burst is over.

Python frees the buffers of ended sessions and finished deliveries, but
glibc's allocator keeps freed heap pages for reuse, so a daemon's resident
memory would stay at its peak. ``malloc_trim(0)`` returns them; it is called
when a process goes idle (no sessions, no deliveries), not per message.

Intake also keeps socket reads on the heap (``heap_reads``): asyncio reads
each socket into a fresh 256 KiB buffer, then cuts it down to what arrived.
Past glibc's 128 KiB threshold every such buffer is a new mapping: an mmap,
a page fault or two, an mremap and a munmap per read, 9 % of intake's CPU
under load (perf). On the heap a read is a read.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@functools.cache
def _trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = _libc().malloc_trim  # type: ignore[union-attr]
    except AttributeError:  # not glibc: nothing to do
        return None
    return trim


def heap_reads() -> None:
    """Allocations up to 1 MiB from the heap, whose top is kept up to 16 MiB (``give_back``
    still returns it all once the process is idle)."""
    try:
        mallopt: Callable[[int, int], int] = _libc().mallopt  # type: ignore[union-attr]
    except AttributeError:  # not glibc: its allocator decides
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    mallopt(_M_TRIM_THRESHOLD, 16 << 20)


def give_back() -> None:
    trim = _trim()
    if trim is not None:
        trim(0)
