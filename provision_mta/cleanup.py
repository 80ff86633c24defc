"""What Postfix's cleanup does to a message on its way in: complete the
headers a sender left out, qualify bare addresses with ``$myorigin``.

:class:`Cleanup` works on the message as it streams in (SMTP's DATA, a
local submission), line by line, so that intake never holds more of a
message than its header section: the Received line first, then any missing
``From:``, ``Date:``, ``Message-ID:``, then the sender's headers and the
body. Every line ends in CRLF in the queue: a bare CR or a bare LF inside
the data becomes CRLF (RFC 5321 2.3.8 allows them only together), so that
no next hop can read a line end, or an end of data, where this MTA saw none.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable

# Postfix's hopcount_limit: more Received lines than this is a mail loop.
HOPCOUNT_LIMIT = 50
# Postfix's header_size_limit: past this, what follows counts as body.
HEADER_SIZE_LIMIT = 102400
_BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_SPACE = re.compile(rb"\s")


def qualify(address: str, myorigin: str) -> str:
    """``user`` → ``user@$myorigin``; the null sender and full addresses stay."""
    if not address or "@" in address:
        return address
    return f"{address}@{myorigin}"


_now: tuple[int, str] = (0, "")


def rfc2822_now() -> str:
    """The local time as a Date: header has it; made once a second, not per message."""
    global _now
    second = int(time.time())
    if _now[0] != second:
        _now = (second, email.utils.formatdate(second, localtime=True))
    return _now[1]


def received_line(myhostname: str, queue_id: str, helo: str = "", client: str = "", protocol: str = "ESMTP") -> str:
    """As Postfix writes it: who handed the message over (a client, or local submission), who took it, when."""
    when = rfc2822_now()
    if not client:
        return f"Received: by {myhostname} (provision-mta) id {queue_id};\r\n\t{when}"
    source = f"from {helo or 'unknown'} (unknown [{client}])"
    return f"Received: {source}\r\n\tby {myhostname} (provision-mta) with {protocol} id {queue_id};\r\n\t{when}"


class Cleanup:
    """Feed it the message (dot-unstuffed) in pieces of one or more lines; a piece
    may end within a line, never between a CR and its LF. It writes the cleaned
    message to ``write``. ``size`` counts what the sender sent, for message_size_limit."""

    def __init__(self, write: Callable[[bytes], None], sender: str, myhostname: str, queue_id: str, received: str = "") -> None:
        self._write = write
        self.sender, self.myhostname, self.queue_id, self.received = sender, myhostname, queue_id, received
        self._headers: list[bytes] = []
        self._header_bytes = 0
        self._partial = b""
        self._in_headers = True
        self.names: set[bytes] = set()
        self.hops = 0
        self.size = 0

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        # A CR or LF that is not part of a CRLF; counting is far cheaper than the substitution.
        pairs = data.count(b"\r\n")
        if data.count(b"\r") != pairs or data.count(b"\n") != pairs:
            data = _BARE_LINE_END.sub(b"\r\n", data)
        if not self._in_headers:
            self._write(data)
            return
        data = self._partial + data
        lines = data.split(b"\r\n")
        self._partial = lines.pop()
        for index, line in enumerate(lines):
            if not self._in_headers:
                self._write(b"".join(item + b"\r\n" for item in lines[index:]))
                break
            self._header_line(line)
        if self._in_headers and self._header_bytes + len(self._partial) > HEADER_SIZE_LIMIT:
            self._end_of_headers()
        if not self._in_headers and self._partial:
            self._write(self._partial)
            self._partial = b""

    def _header_line(self, line: bytes) -> None:
        continuation = line[:1] in (b" ", b"\t")
        name, colon, _ = line.partition(b":")
        name = name.strip()
        if not line or not (continuation or (colon and name and not _SPACE.search(name))):
            # An empty line ends the headers; so does a line that is no header (a body without one).
            self._end_of_headers()
            self._write(line + b"\r\n")
            return
        if not continuation:
            name = name.lower()
            self.names.add(name)
            self.hops += name == b"received"
        self._headers.append(line + b"\r\n")
        self._header_bytes += len(line) + 2

    def _end_of_headers(self) -> None:
        self._in_headers = False
        added = [self.received] if self.received else []
        if b"from" not in self.names:
            added.append(f"From: {self.sender or 'MAILER-DAEMON@' + self.myhostname}")
        if b"date" not in self.names:
            added.append(f"Date: {rfc2822_now()}")
        if b"message-id" not in self.names:
            added.append(f"Message-ID: <{self.queue_id}@{self.myhostname}>")
        self._write(b"".join(line.encode() + b"\r\n" for line in added) + b"".join(self._headers))
        self._headers = []

    def end(self) -> None:
        """The message is complete: a header section still open is closed (headers only, or no data at all)."""
        partial, self._partial = self._partial, b""
        if self._in_headers:
            if partial:
                self._header_line(partial)
                partial = b""
            if self._in_headers:
                self._end_of_headers()
        if partial:
            self._write(partial)


def complete_headers(data: bytes, sender: str, myhostname: str, queue_id: str, received: str = "") -> bytes:
    """The whole message at once, through :class:`Cleanup` (local submission)."""
    out: list[bytes] = []
    cleanup = Cleanup(out.append, sender, myhostname, queue_id, received)
    for line in data.splitlines(keepends=True):
        cleanup.feed(line)
    cleanup.end()
    return b"".join(out)
