"""Loads for the MTA's resource and crash tests, and for bench/mta.py, which
runs the same scenarios at full size and prints the figures: a flood of idle
connections, many sessions sending large messages at once, memory of a
process tree, and the copies a Maildir holds of each message."""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.mta import Raw


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += process_tree(int(child))
    return found


def rss_mib(pid: int, tree: bool = True) -> float:
    """Resident memory of ``pid`` and its descendants (or ``pid`` alone), MiB."""
    total = 0
    for member in process_tree(pid) if tree else [pid]:
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total / 1024


def daemon_memory(pid: int) -> tuple[float, float]:
    """(intake processes, queue manager) of a running ``provision-mta serve``, MiB."""
    own = rss_mib(pid, tree=False)
    return rss_mib(pid) - own, own


@dataclass
class MemorySampler:
    """Samples a daemon's memory (intake, queue manager) every 50 ms in a thread, for the peaks."""

    pid: int
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(daemon_memory(self.pid))
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peaks(self) -> tuple[float, float]:
        return max((s[0] for s in self.samples), default=0.0), max((s[1] for s in self.samples), default=0.0)


class Flood:
    """``count`` connections from ``source`` that never send a byte: what each was told first."""

    def __init__(self, address: str, port: int, source: str, count: int) -> None:
        self.sockets: list[socket.socket] = []
        self.first: dict[socket.socket, bytes] = {}
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.bind((source, 0))
            with contextlib.suppress(BlockingIOError):
                sock.connect((address, port))
            self.sockets.append(sock)

    def read_banners(self, wait: float) -> dict[str, int]:
        """Wait up to ``wait`` s for each connection's first line; counts of 220, 421, closed and silent."""
        deadline = time.monotonic() + wait
        with selectors.DefaultSelector() as selector:
            pending = 0
            for sock in self.sockets:
                if sock not in self.first:
                    selector.register(sock, selectors.EVENT_READ)
                    pending += 1
            while pending and time.monotonic() < deadline:
                for key, _events in selector.select(timeout=0.05):
                    ready = key.fileobj
                    assert isinstance(ready, socket.socket)
                    try:
                        self.first[ready] = ready.recv(512) or b"closed"
                    except OSError:
                        self.first[ready] = b"closed"
                    selector.unregister(ready)
                    pending -= 1
        counts = {"220": 0, "421": 0, "closed": 0, "silent": 0}
        for sock in self.sockets:
            line = self.first.get(sock)
            kind = "silent" if line is None else "closed" if line == b"closed" else line[:3].decode(errors="replace")
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def timed_message(address: str, port: int, source: str, recipient: bytes, timeout: float = 10) -> tuple[list[int], float]:
    """One message from a fresh connection: the codes, and the seconds it took (or the timeout)."""
    started = time.monotonic()
    try:
        with Raw(address, port, source=source, timeout=timeout) as raw:
            codes = raw.message(b"legit@example.org", [recipient], b"Subject: legit\r\n\r\nhello\r\n.\r\n")
    except OSError:
        codes = []
    return codes, time.monotonic() - started


def big_sessions(address: str, port: int, sources: list[str], size: int, recipient: bytes) -> list[int]:
    """One session per source, all sending a ``size``-byte message at once: every
    session sends its data, then all wait for each other before the final dot.
    Returns each session's last code."""
    line = b"y" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * (size // len(line))
    sent = threading.Barrier(len(sources) + 1, timeout=300)
    codes: list[int] = [0] * len(sources)

    def session(index: int, source: str) -> None:
        try:
            with Raw(address, port, source=source, timeout=120) as raw:
                for command in (b"EHLO big.example.org", b"MAIL FROM:<big@example.org>", b"RCPT TO:<" + recipient + b">", b"DATA"):
                    raw.code(command)
                raw.send(body)
                sent.wait()
                raw.send(b".\r\n")
                codes[index] = raw.reply()[0]
        except (OSError, threading.BrokenBarrierError):
            codes[index] = -1

    threads = [threading.Thread(target=session, args=(index, source)) for index, source in enumerate(sources)]
    for thread in threads:
        thread.start()
    sent.wait()  # every session's data is with the server now: the moment memory is highest
    for thread in threads:
        thread.join()
    return codes


def maildir_copies(maildir: Path) -> dict[str, list[str]]:
    """Message-ID → the PID part (P1234) of each copy's file name in new/ and cur/."""
    copies: dict[str, list[str]] = defaultdict(list)
    for folder in ("new", "cur"):
        for path in (maildir / folder).glob("*"):
            head = path.read_bytes()[:4096]
            found = re.search(rb"Message-ID: (<[^>]+>)", head)
            pid = re.search(r"\.P(\d+)", path.name)
            copies[found.group(1).decode() if found else "<none>"].append(pid.group(1) if pid else "?")
    return copies
