"""SMTP sessions per client address, counted across the intake processes
(what Postfix's anvil does for ``smtpd_client_connection_count_limit``).

The counts live in one shared memory file (a memfd the daemon creates and
hands to each ``smtpd`` child): one region of counters per intake process,
written only by that process, so no lock is needed; the count for an
address is the sum over the regions. A region is a count-min sketch: the
address is hashed twice into 65,536 counters and the smaller of the two
sums is its count, so two clients share a count only if both hashes collide
(then a client can be refused early, never let past its limit). When an
intake process dies, the daemon zeroes its region before starting another.
"""

from __future__ import annotations

import functools
import ipaddress
import mmap
import os
import zlib

SLOTS = 1 << 16
_SEEDS = (0, 0x9E3779B9)
_WORD = 4


def create(processes: int) -> int:
    """A shared memory file for ``processes`` regions; its descriptor is inherited by the children."""
    descriptor = os.memfd_create("provision-mta-sessions", 0)
    os.ftruncate(descriptor, processes * SLOTS * _WORD)
    os.set_inheritable(descriptor, True)
    return descriptor


@functools.lru_cache(maxsize=4096)  # a client's address is parsed once, not at each connection
def _slots(address: str) -> tuple[int, ...]:
    try:
        packed = ipaddress.ip_address(address).packed
    except ValueError:
        packed = address.encode()
    return tuple(zlib.crc32(packed, seed) & (SLOTS - 1) for seed in _SEEDS)


class SessionCounts:
    def __init__(self, descriptor: int, processes: int, index: int) -> None:
        self.processes, self.index = processes, index
        self._map = mmap.mmap(descriptor, processes * SLOTS * _WORD)
        self._counts = memoryview(self._map).cast("I")

    def clear(self, index: int) -> None:
        """A region whose process is gone (the daemon calls this before starting its successor)."""
        start = index * SLOTS
        self._counts[start : start + SLOTS] = memoryview(bytes(SLOTS * _WORD)).cast("I")

    def _slots(self, address: str) -> tuple[int, ...]:
        return _slots(address)

    def count(self, address: str) -> int:
        """Open sessions from ``address``, all intake processes together."""
        return min(sum(self._counts[region * SLOTS + slot] for region in range(self.processes)) for slot in self._slots(address))

    def opened(self, address: str) -> int:
        """One more session from ``address``; returns the count with it."""
        own = self.index * SLOTS
        for slot in self._slots(address):
            self._counts[own + slot] += 1
        return self.count(address)

    def closed(self, address: str) -> None:
        own = self.index * SLOTS
        for slot in self._slots(address):
            if self._counts[own + slot] > 0:
                self._counts[own + slot] -= 1
