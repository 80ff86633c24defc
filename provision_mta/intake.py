"""SMTP intake in processes of its own, beside the queue manager's.

Python runs one thread at a time per process: with intake and delivery in
one process, a busy server used one core. As Postfix's master hands its
listening sockets to smtpd processes, ``serve`` binds the sockets, starts
``provision-mta smtpd`` children that accept on them (the kernel spreads
connections across them), and keeps the queue manager for itself. A child
commits each message durably (fsync'd, see ``queue``) before its 250, then
writes a byte to a pipe that wakes the queue manager. A child that dies is
started again; the sockets stay bound in the parent meanwhile, so clients
only queue up. A child dies with its parent (Linux's parent-death signal),
so a kill -9 of ``serve`` leaves no orphan holding the port. The children
count sessions per client together in shared memory (see ``anvil``) and
each accepts its share of the session limit (see ``listener``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from provision_mta import anvil
from provision_mta.anvil import SessionCounts
from provision_mta.config import load_config
from provision_mta.listener import Listener, raise_file_limit, session_share
from provision_mta.memory import heap_reads
from provision_mta.queue import GroupCommitter, Queue
from provision_mta.smtpd import SmtpFactory

_PR_SET_PDEATHSIG = 1
DELIVERY_NICENESS = 15


def bind(hosts: list[str] | None, port: int) -> list[socket.socket]:
    """Listening sockets for ``inet_interfaces`` (None: every address)."""
    if hosts is None:
        if socket.has_dualstack_ipv6():
            return [socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024)]
        return [socket.create_server(("", port), backlog=1024)]
    sockets = []
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # A child of a killed daemon may still hold the port for a moment.
        deadline = time.monotonic() + 10
        while True:
            try:
                sockets.append(socket.create_server((host.strip("[]"), port), family=family, backlog=1024))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    return sockets


class IntakeProcesses:
    """The ``smtpd`` children of ``serve``: started, signalled, restarted, stopped."""

    def __init__(self, config_directory: Path, sockets: list[socket.socket], notify_fd: int, count: int) -> None:
        self.config_directory, self.sockets, self.notify_fd = config_directory, sockets, notify_fd
        self.children: list[subprocess.Popen[bytes] | None] = [None] * count
        self.stopping = False
        self.priority = 0
        self.counts_fd = anvil.create(count)
        self.counts = SessionCounts(self.counts_fd, count, 0)

    def _start(self, slot: int) -> None:
        fds = [s.fileno() for s in self.sockets]
        self.counts.clear(slot)  # the sessions of a child that died are gone with it
        command = [sys.executable, "-m", "provision_mta.daemon", "-c", str(self.config_directory), "smtpd"]
        command += ["--parent", str(os.getpid()), "--notify-fd", str(self.notify_fd), *[f"--listen-fd={fd}" for fd in fds]]
        command += [f"--priority={self.priority}", f"--counts-fd={self.counts_fd}", f"--slot={slot}", f"--slots={len(self.children)}"]
        self.children[slot] = subprocess.Popen(command, pass_fds=[*fds, self.notify_fd, self.counts_fd])

    def start(self) -> None:
        """Start the children, then lower the queue manager's own priority: as in
        Postfix, a client waiting for its 250 comes before the queue's next
        delivery, and on a busy host the queue absorbs the difference. (+5
        left intake at 85 % of Postfix's on two cores, +15 brought it level;
        delivery still kept pace, see bench/mta.py.)"""
        self.priority = os.getpriority(os.PRIO_PROCESS, 0)
        for slot in range(len(self.children)):
            self._start(slot)
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, min(self.priority + DELIVERY_NICENESS, 19))

    def signal(self, signum: int) -> None:
        for child in self.children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    async def watch(self) -> None:
        """Start again any child that died by itself (after a second, not in a loop)."""
        while not self.stopping:
            await asyncio.sleep(0.5)
            for slot, child in enumerate(self.children):
                if child is not None and child.poll() is not None and not self.stopping:
                    print(
                        f"provision-mta: smtpd process exited with status {child.returncode}; starting another", file=sys.stderr, flush=True
                    )
                    await asyncio.sleep(1)
                    if not self.stopping:
                        self._start(slot)

    async def stop(self) -> None:
        """SIGTERM: each child stops accepting, finishes its commits, exits."""
        self.stopping = True
        self.signal(signal.SIGTERM)
        for child in self.children:
            if child is not None:
                try:
                    await asyncio.to_thread(child.wait, 60)
                except subprocess.TimeoutExpired:
                    child.kill()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (the ``mta`` extra; Debian's
    python3-uvloop), else asyncio's. Under bench/mta.py's load it cut intake's
    CPU per message by about 15 % (its transports and callbacks are C, not
    Python); everything intake does goes through asyncio's public interface,
    so the tests pass on either."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def smtpd_main(config_directory: Path, listen_fds: list[int], notify_fd: int, parent: int, priority: int, counts: SessionCounts) -> None:
    """The child: accept, commit, notify; until SIGTERM or the parent's death."""
    with contextlib.suppress(OSError):  # started again by a parent that lowered its own priority
        os.setpriority(os.PRIO_PROCESS, 0, priority)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the signal was armed
        sys.exit(1)
    os.set_blocking(notify_fd, False)
    heap_reads()
    # What was loaded to start (modules, settings) lives as long as the process: kept out of
    # the collector's full passes, which otherwise walk it all again and again under load.
    gc.freeze()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_serve_intake(config_directory, [socket.socket(fileno=fd) for fd in listen_fds], notify_fd, counts))


async def _serve_intake(config_directory: Path, sockets: list[socket.socket], notify_fd: int, counts: SessionCounts) -> None:
    config = load_config(config_directory / "main.cf")
    committer = GroupCommitter(Queue(config.queue_directory), share=(counts.index, counts.processes))

    def queued() -> None:
        with contextlib.suppress(BlockingIOError):  # a full pipe: the queue manager is awake anyway
            os.write(notify_fd, b"!")

    factory = SmtpFactory(config, committer, queued)
    loop = asyncio.get_running_loop()
    share = session_share(config, counts.processes, raise_file_limit())
    listener = Listener(loop, sockets, factory, lambda: factory.intake.config, counts, share)
    listener.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def reload() -> None:
        # A bad file: the parent says so and keeps its settings; so do we.
        with contextlib.suppress(OSError, ValueError):
            factory.reload(load_config(config_directory / "main.cf"))

    loop.add_signal_handler(signal.SIGHUP, reload)
    await stop.wait()
    listener.stop()
    # Sessions in DATA finish it and their commit; idle ones are dropped with the process.
    deadline = loop.time() + 30
    while factory.intake.in_data and loop.time() < deadline:
        await asyncio.sleep(0.05)
    committer.close()
