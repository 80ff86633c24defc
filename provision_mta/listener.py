"""Accepting SMTP connections within limits, in each intake process.

- ``smtpd_client_connection_count_limit`` (50) sessions per client address,
  all intake processes together (see ``anvil``); one more gets Postfix's
  ``421 4.7.0`` and is closed. Clients in ``smtpd_client_event_limit_exceptions``
  (``$mynetworks``) are exempt, as in Postfix.
- Sessions in all: smtpd's maxproc in master.cf, else ``default_process_limit``
  (100), shared out among the intake processes, and never more than the
  file descriptors allow. At the limit a process stops accepting: new
  clients wait in the listen queue, as Postfix's do when every smtpd
  process is busy, and are taken as sessions end.
- At that limit, sessions idle for 10 s are closed (Postfix's default
  ``smtpd_timeout = ${stress?{10}:{300}}s``), so that idle clients cannot
  keep the others waiting for long.
- An accept that fails (out of file descriptors or memory) pauses accepting
  for a second and is logged once per minute with a count, never a traceback
  per connection.

The accept loop is this module's own (``loop.add_reader`` on the listening
socket, then ``loop.connect_accepted_socket``): asyncio's server can neither
stop accepting at a limit nor be told how to report a failed accept.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import socket
from collections.abc import Callable

from provision_mta.anvil import SessionCounts
from provision_mta.config import MtaConfig
from provision_mta.memory import give_back
from provision_mta.smtpd import SmtpSession
from provision_mta.throttle import Throttled

# Descriptors kept for everything but sessions: the queue's writers, the log, the listening sockets...
_RESERVED_FDS = 64
# A session holds its socket and, during DATA, its queue file.
_FDS_PER_SESSION = 2
_BURST = 64
STRESS_TIMEOUT = 10.0


def raise_file_limit() -> int:
    """The soft RLIMIT_NOFILE raised to the hard one (systemd's LimitNOFILE, the init script's ulimit -n); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def session_share(config: MtaConfig, processes: int, file_limit: int) -> int:
    """This process's part of the session limit, within what its descriptors allow."""
    by_files = max(1, (file_limit - _RESERVED_FDS) // _FDS_PER_SESSION)
    if config.session_limit <= 0:
        return by_files
    return max(1, min(-(-config.session_limit // processes), by_files))


class Listener:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        factory: Callable[[Callable[[], None]], SmtpSession],
        config: Callable[[], MtaConfig],
        counts: SessionCounts,
        share: int,
    ) -> None:
        self.loop, self.sockets, self.factory, self.config, self.counts = loop, sockets, factory, config, counts
        self.share = share
        self.open = 0
        self.sessions: set[SmtpSession] = set()
        self.paused = False
        self.stopped = False
        self.log = Throttled()
        self._resume_handle: asyncio.TimerHandle | None = None
        self._sweeping: asyncio.TimerHandle | None = None
        self._trimming: asyncio.TimerHandle | None = None

    def start(self) -> None:
        for sock in self.sockets:
            sock.setblocking(False)
        self._listen()

    def stop(self) -> None:
        self.stopped = True
        self._unlisten()

    def _listen(self) -> None:
        self.paused = False
        for sock in self.sockets:
            self.loop.add_reader(sock.fileno(), self._accept, sock)

    def _unlisten(self) -> None:
        self.paused = True
        for sock in self.sockets:
            self.loop.remove_reader(sock.fileno())

    def _under_stress(self) -> None:
        """At the session limit: every second, close the sessions idle for STRESS_TIMEOUT."""
        if self._sweeping is not None:
            return
        self._sweep()

    def _sweep(self) -> None:
        self._sweeping = None
        if self.stopped or self.open < self.share:
            return
        limit = min(STRESS_TIMEOUT, self.config().smtpd_timeout)
        for session in list(self.sessions):
            if session.idle_for() >= limit:
                session.time_out()
        self._sweeping = self.loop.call_later(1.0, self._sweep)

    def _resume(self) -> None:
        self._resume_handle = None
        if self.paused and not self.stopped and self.open < self.share:
            self._listen()

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(_BURST):
            if self.open >= self.share:
                self._unlisten()  # the rest wait in the listen queue until a session ends
                self._under_stress()
                return
            try:
                connection, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                self.log.say("accept", f"cannot accept connections: {exc.strerror or exc}; trying again in 1 s")
                self._unlisten()
                if self._resume_handle is None:
                    self._resume_handle = self.loop.call_later(1.0, self._resume)
                return
            self._session(connection, str(peer[0]))

    def _give_back(self) -> None:
        """Once the sessions are gone, the memory their buffers took goes back (see ``memory``)."""
        self._trimming = None
        if self.open == 0:
            give_back()

    def _session(self, connection: socket.socket, client: str) -> None:
        config = self.config()
        connection.setblocking(False)
        count = self.counts.opened(client)
        limit = config.smtpd_client_connection_count_limit
        if 0 < limit < count and not config.limit_exempt(client):
            self.counts.closed(client)
            with contextlib.suppress(OSError):
                connection.send(f"421 4.7.0 {config.myhostname} Error: too many connections from {client}\r\n".encode())
            connection.close()
            self.log.say(
                f"limit {client}", f"too many connections from {client}: {count} (smtpd_client_connection_count_limit = {limit}); refused"
            )
            return
        self.open += 1
        ended = False

        def closed() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            self.open -= 1
            self.sessions.discard(protocol)
            self.counts.closed(client)
            if self.paused and not self.stopped and self._resume_handle is None and self.open < self.share:
                self._listen()
            if self.open == 0 and self._trimming is None:
                self._trimming = self.loop.call_later(1.0, self._give_back)

        protocol = self.factory(closed)
        self.sessions.add(protocol)
        task = self.loop.create_task(self.loop.connect_accepted_socket(lambda: protocol, connection))

        def made(done: asyncio.Task[object]) -> None:
            if done.cancelled() or done.exception() is not None:
                connection.close()
                closed()

        task.add_done_callback(made)
