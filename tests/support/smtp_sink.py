"""A real SMTP server on a loopback address that keeps what it receives,
with the client's address and HELO name (aiosmtpd)."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from typing import Any

from aiosmtpd.controller import Controller

from provision.lab.lab import add_loopback_address, remove_loopback_address


@dataclass
class Received:
    peer: str
    helo: str
    sender: str
    recipients: list[str]
    subject: str
    content: bytes = b""
    tls: bool = False
    arrived: float = 0.0
    """time.monotonic() when the sink answered its DATA: the spacing of deliveries."""


@dataclass
class _Handler:
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refusing: bool = False
    """While set, every message gets 421 (a next hop that is there but busy)."""
    delay: float = 0.0
    """Seconds each message takes, so that concurrent deliveries overlap."""
    in_flight: int = 0
    most_in_flight: int = 0

    # aiosmtpd calls this hook by name.
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusing:
            return "421 4.3.2 Service not available, try later"
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            with self.lock:
                self.in_flight -= 1
        subject = message_from_bytes(envelope.original_content or b"").get("Subject", "")
        with self.lock:
            self.messages.append(
                Received(
                    session.peer[0],
                    session.host_name or "",
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    subject,
                    envelope.original_content or b"",
                    session.ssl is not None,
                    time.monotonic(),
                )
            )
        return "250 OK kept"


class SmtpSink:
    """Listens on ``address:port``; the address is added to ``lo`` for the test."""

    def __init__(self, address: str, port: int = 2525, tls_context: ssl.SSLContext | None = None, delay: float = 0.0) -> None:
        """With ``tls_context`` it offers STARTTLS (and records who used it)."""
        self.address, self.port = address, port
        self.handler = _Handler(delay=delay)
        self.controller = Controller(self.handler, hostname=address, port=port, tls_context=tls_context)
        self._added = False

    def __enter__(self) -> SmtpSink:
        self._added = add_loopback_address(self.address)  # one already there (a lab's) is not ours to remove
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
        if self._added:
            remove_loopback_address(self.address)

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def wait_for(self, count: int, timeout: float = 60.0) -> list[Received]:
        """Wait until ``count`` messages arrived (polling, bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.2)
        raise AssertionError(f"the sink got {len(self.messages)} of {count} messages within {timeout:g}s: {self.messages}")
