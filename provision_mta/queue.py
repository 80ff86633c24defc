"""The queue on disk, and the group commit that makes intake durable and fast.

Folders as Postfix has them: ``incoming`` (accepted, not yet looked at),
``active``, ``deferred``, ``hold``, plus ``maildrop`` for local submission.
A message is one file: a magic line, one line of JSON envelope, the raw
message. Queue files are 0600 in 0700 folders.

Durability: the client hears 250 only after the message file *and* its
folder entry are on disk. Doing that per message costs two fsyncs each;
instead a committer thread takes every message that arrived while the last
batch was being flushed, writes them all, fsyncs them together (concurrent
fsyncs share the file system's journal commit) and the folder once, then
answers every waiting session. Under load one flush serves many sessions.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
MAGIC = b"PROVISION-MTA-1\n"
TEMPORARY_PREFIX = ".tmp-"


@dataclass
class Envelope:
    queue_id: str
    sender: str
    recipients: list[str]
    arrival: float
    client: str = ""
    helo: str = ""
    size: int = 0
    attempts: int = 0
    next_try: float = 0.0
    # Per recipient: the last delivery attempt's reason, for mailq and bounces.
    reasons: dict[str, str] = field(default_factory=dict)

    def to_line(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode() + b"\n"


def new_queue_id() -> str:
    """Sortable by arrival (microseconds, hex), unique by a random tail."""
    return f"{time.time_ns() // 1000:014X}{secrets.token_hex(3).upper()}"


def message_bytes(envelope: Envelope, data: bytes) -> bytes:
    return MAGIC + envelope.to_line() + data


def read_message(path: Path) -> tuple[Envelope, bytes]:
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        raise ValueError(f"{path}: not a queue file")
    header_end = raw.index(b"\n", len(MAGIC))
    fields: dict[str, Any] = json.loads(raw[len(MAGIC) : header_end])
    return Envelope(**fields), raw[header_end + 1 :]


def read_envelope(path: Path) -> Envelope:
    with path.open("rb") as handle:
        if handle.readline() != MAGIC:
            raise ValueError(f"{path}: not a queue file")
        fields: dict[str, Any] = json.loads(handle.readline())
    return Envelope(**fields)


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class Queue:
    """The folders, and moves between them that survive a crash at any point."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in QUEUES:
            (root / name).mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(root / name, 0o700)

    def folder(self, name: str) -> Path:
        return self.root / name

    def recover(self) -> int:
        """After a crash: drop half-written files no client was ever answered for."""
        removed = 0
        for name in QUEUES:
            for path in self.folder(name).glob(TEMPORARY_PREFIX + "*"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def move(self, queue_id: str, source: str, target: str) -> None:
        # No folder fsync, as in Postfix: the rename is atomic, so after a power
        # loss the file is in one folder or the other, never gone; at worst a
        # message is looked at (delivered) again. A process crash keeps the rename.
        os.replace(self.folder(source) / queue_id, self.folder(target) / queue_id)

    def rewrite(self, queue: str, envelope: Envelope, data: bytes) -> None:
        """Replace a message's file (a new envelope after a delivery attempt), atomically."""
        target = self.folder(queue) / envelope.queue_id
        temporary = target.with_name(TEMPORARY_PREFIX + envelope.queue_id)
        _write_synced(temporary, message_bytes(envelope, data))
        os.replace(temporary, target)
        fsync_folder(target.parent)

    def list(self, queue: str) -> list[str]:
        return sorted(p.name for p in self.folder(queue).iterdir() if not p.name.startswith("."))

    def find(self, queue_id: str) -> str | None:
        for name in QUEUES:
            if (self.folder(name) / queue_id).exists():
                return name
        return None


def _write_synced(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass
class _Pending:
    envelope: Envelope
    data: bytes
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class GroupCommitter:
    """Commits messages into ``incoming`` in batches; see the module's docstring."""

    def __init__(self, queue: Queue, writers: int = 8) -> None:
        self.queue = queue
        self._pending: list[_Pending] = []
        self._wake = threading.Condition()
        self._closed = False
        self._writers = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="mta-fsync")
        self._thread = threading.Thread(target=self._run, name="mta-committer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.committed = 0

    async def commit(self, envelope: Envelope, data: bytes) -> None:
        """Returns once the message is durable in ``incoming``: only then may the client hear 250."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the queue is shutting down")
            self._pending.append(_Pending(envelope, data, loop, future))
            self._wake.notify()
        await future

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()
        self._writers.shutdown()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                batch, self._pending = self._pending, []
                if not batch and self._closed:
                    return
            self._flush(batch)

    def _flush(self, batch: list[_Pending]) -> None:
        incoming = self.queue.folder("incoming")

        def write(item: _Pending) -> Exception | None:
            temporary = incoming / (TEMPORARY_PREFIX + item.envelope.queue_id)
            try:
                _write_synced(temporary, message_bytes(item.envelope, item.data))
                os.replace(temporary, incoming / item.envelope.queue_id)
            except OSError as exc:
                return exc
            return None

        outcomes = list(self._writers.map(write, batch))
        try:
            fsync_folder(incoming)
        except OSError as exc:
            outcomes = [exc] * len(batch)
        self.batches += 1
        for item, error in zip(batch, outcomes, strict=True):
            if error is None:
                self.committed += 1
            item.loop.call_soon_threadsafe(_settle, item.future, error)


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
