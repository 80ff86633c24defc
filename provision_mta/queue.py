"""The queue on disk, and the group commit that makes intake durable and fast.

Folders as Postfix has them: ``incoming`` (accepted, not yet looked at),
``active``, ``deferred``, ``hold``, plus ``maildrop`` for local submission
and ``corrupt`` for files that cannot be read as queue files. A message is
one file: a magic line, one line of JSON envelope, the raw message. Queue
files are 0600 in 0700 folders.

Intake streams a message into ``incoming/.tmp-ID`` as it arrives
(:class:`IncomingFile`), so no session holds more than a buffer of it in
memory. Durability: the client hears 250 only after the message file *and*
its folder entry are on disk. Doing that per message costs two fsyncs each;
instead a committer thread takes every message that arrived while the last
batch was being flushed, fsyncs them together (concurrent fsyncs share the
file system's journal commit), renames them into place, fsyncs the folder
once, then answers every waiting session. Under load one flush serves many
sessions. A write that fails (a full disk) removes its temporary file.

Queue files are reused: the file of a message whose delivery is complete
goes to ``spare`` (up to ``SPARE_LIMIT`` files of messages up to
``SPARE_SIZE``) instead of being deleted, and intake writes the next message
over one of those rather than creating a file. A message is two file system
operations cheaper (an inode allocated, then freed), and creating a file is
the costly one where many were deleted lately (ext4 skips each recently
freed inode, one by one: under bench/mta.py's load that search was a third
of intake's system time). The daemon tops the folder up with empty files
when it starts (``fill_spares``, in the niced queue manager's process), so
that a burst finds files ready instead of creating them while clients wait;
the spares of a burst stay for the next one. At most ``SPARE_LIMIT`` x
``SPARE_SIZE`` (64 MB) of disk, as before with fewer, larger files. Writing over a spare is as durable as a new file: the same
fsync of the file and of ``incoming`` before the 250, and the file cut to
its new length first. A spare is emptied when it enters the pool, so a
delivered message's bytes are not kept in the spool (as Postfix deletes
them); a crash between the rename and the emptying leaves one such file, as
private as the queue (0600 in a 0700 folder), until it is reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
CORRUPT = "corrupt"
SPARE = "spare"
SPARE_LIMIT = 4096
SPARE_SIZE = 16384
MAGIC = b"PROVISION-MTA-1\n"
TEMPORARY_PREFIX = ".tmp-"
JOURNAL_PREFIX = ".done-"
_BUFFER = 65536


class CorruptQueueFile(ValueError):
    """A file in a queue folder that is not a queue file this MTA can read."""


@dataclass
class Envelope:
    queue_id: str
    sender: str
    recipients: list[str]
    arrival: float
    client: str = ""
    helo: str = ""
    size: int = 0
    """The message's size in bytes; computed from the file when it is read."""
    attempts: int = 0
    next_try: float = 0.0
    # Per recipient: the last delivery attempt's reason, for mailq and bounces.
    reasons: dict[str, str] = field(default_factory=dict)
    done: list[str] = field(default_factory=list)
    """Deliveries made in earlier attempts (see ``qmgr``), never made again."""

    def to_line(self) -> bytes:
        # The fields hold only str, numbers, and lists and dicts of str: no deep copy (asdict) needed.
        return json.dumps({name: getattr(self, name) for name in _FIELDS}, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_line(cls, line: bytes, name: str) -> Envelope:
        """Parsed strictly: every field known and of its type, the queue ID the file's name."""
        try:
            values = json.loads(line)
        except ValueError as exc:
            raise CorruptQueueFile(f"envelope is not JSON: {exc}") from None
        if not isinstance(values, dict):
            raise CorruptQueueFile("envelope is not a JSON object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise CorruptQueueFile(f"unknown envelope field {unknown[0]!r}")
        missing = [name for name in ("queue_id", "sender", "recipients", "arrival") if name not in values]
        if missing:
            raise CorruptQueueFile(f"envelope lacks {missing[0]!r}")
        for key, value in values.items():
            if not _of_type(value, _TYPES[key]):
                raise CorruptQueueFile(f"envelope field {key!r} has the wrong type")
        if values["queue_id"] != name:
            raise CorruptQueueFile(f"envelope names queue ID {values['queue_id']!r}")
        return cls(**values)


_FIELDS = tuple(f.name for f in fields(Envelope))
_TYPES: dict[str, Any] = {
    "queue_id": str, "sender": str, "recipients": list[str], "arrival": float, "client": str, "helo": str,
    "size": int, "attempts": int, "next_try": float, "reasons": dict[str, str], "done": list[str],
}  # fmt: skip


def _of_type(value: object, wanted: Any) -> bool:
    if isinstance(value, bool):
        return False
    if wanted is float:
        return isinstance(value, (int, float))
    if wanted is int or wanted is str:
        return isinstance(value, wanted)
    if wanted == list[str]:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def new_queue_id() -> str:
    """Sortable by arrival (microseconds, hex), unique by a random tail."""
    return f"{time.time_ns() // 1000:014X}{secrets.token_hex(3).upper()}"


def message_bytes(envelope: Envelope, data: bytes) -> bytes:
    return MAGIC + envelope.to_line() + data


def read_message(path: Path) -> tuple[Envelope, bytes]:
    """Raises OSError (gone, unreadable) or :class:`CorruptQueueFile`."""
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        raise CorruptQueueFile("not a queue file")
    header_end = raw.find(b"\n", len(MAGIC))
    if header_end < 0:
        raise CorruptQueueFile("no envelope line")
    envelope = Envelope.from_line(raw[len(MAGIC) : header_end], path.name)
    data = raw[header_end + 1 :]
    envelope.size = len(data)
    return envelope, data


def read_data(path: Path) -> bytes:
    """The message alone, for a delivery (its envelope was read and checked before)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    header_end = raw.find(b"\n", len(MAGIC)) if raw.startswith(MAGIC) else -1
    if header_end < 0:
        raise CorruptQueueFile("not a queue file")
    return raw[header_end + 1 :]


def read_envelope(path: Path) -> Envelope:
    """The envelope alone (for listings), without reading the message."""
    with path.open("rb") as handle:
        if handle.readline() != MAGIC:
            raise CorruptQueueFile("not a queue file")
        line = handle.readline()
        if not line.endswith(b"\n"):
            raise CorruptQueueFile("no envelope line")
        envelope = Envelope.from_line(line, path.name)
        envelope.size = os.fstat(handle.fileno()).st_size - handle.tell()
    return envelope


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
        for name in (*QUEUES, CORRUPT, SPARE):
            (root / name).mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(root / name, 0o700)
        self.active = str(root / "active")
        self.incoming = str(root / "incoming")
        self.spare = str(root / SPARE)
        self._folders = {name: str(root / name) for name in (*QUEUES, CORRUPT)}
        self._spares = len(os.listdir(self.spare))
        self._spares_counted = time.monotonic()

    def folder(self, name: str) -> Path:
        return self.root / name

    def recover(self) -> int:
        """After a crash: drop half-written files no client was ever answered for,
        and delivery journals whose message has left ``active``."""
        removed = 0
        for name in QUEUES:
            for path in self.folder(name).glob(TEMPORARY_PREFIX + "*"):
                path.unlink(missing_ok=True)
                removed += 1
        for path in self.folder("active").glob(JOURNAL_PREFIX + "*"):
            if not (path.parent / path.name[len(JOURNAL_PREFIX) :]).exists():
                path.unlink(missing_ok=True)
        return removed

    def move(self, queue_id: str, source: str, target: str) -> None:
        # No folder fsync, as in Postfix: the rename is atomic, so after a power
        # loss the file is in one folder or the other, never gone; at worst a
        # message is looked at (delivered) again. A process crash keeps the rename.
        os.replace(os.path.join(self._folders[source], queue_id), os.path.join(self._folders[target], queue_id))

    def retire(self, path: str | Path, size: int) -> None:
        """A message whose delivery is complete leaves the queue: its file goes to
        ``spare`` for intake to reuse, or is deleted when it is large or there are
        spares enough. Atomic either way, and not fsync'd (as ``move``). Raises
        FileNotFoundError when it is gone already."""
        if size <= SPARE_SIZE and self._spare_room():
            name = os.path.basename(path)
            spare = os.path.join(self.spare, name)
            try:
                os.rename(path, spare)
            except FileNotFoundError:
                raise
            except OSError:
                pass  # whatever stops a rename, a deletion does as well
            else:
                self._spares += 1
                # Emptied by name once it is out of the queue, so a delivered message
                # is not kept (Postfix deletes it). By name, never through a
                # descriptor opened before: intake may take the spare at any moment,
                # and then the name is gone (ENOENT) rather than its new content cut.
                with contextlib.suppress(OSError):
                    os.truncate(spare, 0)
                return
        os.unlink(path)

    def fill_spares(self) -> int:
        """Empty spare files up to ``SPARE_LIMIT``; returns how many it made. Stops at
        the first failure (a full disk, no inodes left): a spare is only a head start."""
        try:
            missing = SPARE_LIMIT - len(os.listdir(self.spare))
        except OSError:
            return 0
        made = 0
        prefix = f"F{secrets.token_hex(4).upper()}"
        for number in range(missing):
            try:
                os.close(os.open(os.path.join(self.spare, f"{prefix}{number:05d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except OSError:
                break
            made += 1
        self._spares += made
        return made

    def _spare_room(self) -> bool:
        # Intake takes spares in other processes: counted again once a second, not per message.
        if time.monotonic() - self._spares_counted > 1:
            with contextlib.suppress(OSError):
                self._spares = len(os.listdir(self.spare))
            self._spares_counted = time.monotonic()
        return self._spares < SPARE_LIMIT

    def quarantine(self, queue_id: str, source: str) -> Path:
        """Move a file that cannot be read out of the way, as Postfix's ``corrupt`` queue."""
        target = self.folder(CORRUPT) / queue_id
        os.replace(self.folder(source) / queue_id, target)
        return target

    def rewrite_envelope(self, queue: str, envelope: Envelope) -> None:
        """A new envelope for a message's file, the message copied across in
        pieces (never whole in memory); atomic, and nothing left on failure."""
        target = self.folder(queue) / envelope.queue_id
        temporary = target.with_name(TEMPORARY_PREFIX + envelope.queue_id)
        with target.open("rb") as source:
            source.readline()
            source.readline()
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(descriptor, MAGIC + envelope.to_line())
                while chunk := source.read(_BUFFER * 4):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
                os.close(descriptor)
                os.replace(temporary, target)
            except OSError:
                with contextlib.suppress(OSError):
                    os.close(descriptor)
                temporary.unlink(missing_ok=True)
                raise
        fsync_folder(target.parent)

    def rewrite(self, queue: str, envelope: Envelope, data: bytes) -> None:
        """Replace a message's file (a new envelope after a delivery attempt), atomically."""
        target = self.folder(queue) / envelope.queue_id
        temporary = target.with_name(TEMPORARY_PREFIX + envelope.queue_id)
        write_synced(temporary, message_bytes(envelope, data))
        try:
            os.replace(temporary, target)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        fsync_folder(target.parent)

    def journals(self) -> list[str]:
        """The queue IDs that have a delivery journal in ``active``."""
        return [name[len(JOURNAL_PREFIX) :] for name in os.listdir(self.active) if name.startswith(JOURNAL_PREFIX)]

    def list(self, queue: str) -> list[str]:
        return sorted(name for name in os.listdir(self._folders[queue]) if not name.startswith("."))

    def find(self, queue_id: str) -> str | None:
        for name in QUEUES:
            if (self.folder(name) / queue_id).exists():
                return name
        return None

    # The delivery journal of a message in ``active``: one line per delivery made
    # in this attempt, appended the moment it is made (see ``qmgr``).

    def journal(self, queue_id: str) -> Path:
        return self.folder("active") / (JOURNAL_PREFIX + queue_id)

    def journal_done(self, queue_id: str, key: str) -> None:
        """Append ``key``. No fsync: a process killed now keeps the write (the page
        cache survives it); only a power loss could cost it, and then a delivery
        is made twice, never lost."""
        descriptor = os.open(self.journal(queue_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, key.encode("utf-8", "surrogateescape") + b"\n")
        finally:
            os.close(descriptor)

    def journal_read(self, queue_id: str) -> set[str]:
        try:
            text = self.journal(queue_id).read_bytes().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return set()
        return {line for line in text.split("\n") if line}

    def journal_clear(self, queue_id: str) -> None:
        self.journal(queue_id).unlink(missing_ok=True)


def write_synced(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data``, fsync'd; on any failure nothing is left behind."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    except OSError:
        os.close(descriptor)
        path.unlink(missing_ok=True)
        raise
    os.close(descriptor)


class Spares:
    """The spare files one intake process may write messages over (see the module's
    docstring). The intake processes share the folder: each takes its own part
    (``share``: its number, and how many there are) and the others' only when
    its own is used up; a spare another one took first is simply skipped."""

    def __init__(self, folder: str, share: tuple[int, int] = (0, 1)) -> None:
        self.folder, self.share = folder, share
        self._names: list[str] = []
        self._lock = threading.Lock()
        self._listed = 0.0

    def take(self, target: str) -> int | None:
        """A spare renamed to ``target`` and opened for writing, or None (none left)."""
        while True:
            try:
                name = self._names.pop()
            except IndexError:
                if not self._refill():
                    return None
                continue
            try:
                os.rename(os.path.join(self.folder, name), target)
            except FileNotFoundError:
                continue  # another intake process took it
            except OSError:
                return None
            try:
                return os.open(target, os.O_WRONLY | os.O_NOFOLLOW)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(target)
                return None

    def _refill(self) -> bool:
        with self._lock:
            if self._names:
                return True
            now = time.monotonic()
            if now - self._listed < 0.5:  # none a moment ago: not a listing per message
                return False
            self._listed = now
            try:
                names = os.listdir(self.folder)
            except OSError:
                return False
            number, processes = self.share
            own = [name for name in names if zlib.crc32(name.encode()) % processes == number]
            self._names = own or names
            random.shuffle(self._names)  # when taking from the others' part, not in the same order as they do
            return bool(self._names)


class IncomingFile:
    """A message on its way into ``incoming``, envelope first. A message that fits
    in the buffer (64 KB: most mail) is written, fsync'd and renamed into place
    in one go by the committer's thread (see ``finish``), so no file operation
    waits on the session's event loop; a longer one goes to ``.tmp-ID`` as it
    arrives, a buffer at a time. The file is a spare when there is one (see
    ``Spares``), else a new one. A failed write is kept as ``error`` (the caller
    answers 451 once the client has finished sending) and the file is removed
    at once."""

    def __init__(self, queue: Queue, envelope: Envelope, spares: Spares | None = None) -> None:
        self.folder = queue.incoming
        self.queue_id = envelope.queue_id
        self.temporary = os.path.join(self.folder, TEMPORARY_PREFIX + envelope.queue_id)
        self.error: OSError | None = None
        self._spares = spares
        self._buffer = bytearray(MAGIC + envelope.to_line())
        self._descriptor: int | None = None
        self._written = 0
        self._reused = False

    def write(self, data: bytes) -> None:
        if self.error is None:
            self._buffer += data
            if len(self._buffer) >= _BUFFER:
                self._flush()

    def _open(self) -> int:
        descriptor = self._spares.take(self.temporary) if self._spares is not None else None
        if descriptor is not None:
            self._reused = True
            return descriptor
        return os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def _flush(self) -> None:
        try:
            if self._descriptor is None:
                self._descriptor = self._open()
            with memoryview(self._buffer) as whole:
                written = 0
                while written < len(whole):
                    written += os.write(self._descriptor, whole[written:])
        except OSError as exc:
            self.error = exc
            self.discard()
            return
        self._written += written
        del self._buffer[:]

    def finish(self) -> None:
        """In a committer thread: the rest written, fsync'd, renamed into place."""
        if self.error is None:
            self._flush()
        if self.error is not None:
            raise self.error
        assert self._descriptor is not None
        try:
            if self._reused:  # what an earlier message left past this one's end
                os.ftruncate(self._descriptor, self._written)
            os.fsync(self._descriptor)
            os.replace(self.temporary, os.path.join(self.folder, self.queue_id))
        except OSError as exc:
            self.error = exc
            self.discard()
            raise
        os.close(self._descriptor)
        self._descriptor = None

    def discard(self) -> None:
        """Nothing of this message stays (a failed write, a client gone, a message refused)."""
        del self._buffer[:]
        if self._descriptor is not None:
            with contextlib.suppress(OSError):
                os.close(self._descriptor)
            self._descriptor = None
            with contextlib.suppress(OSError):
                os.unlink(self.temporary)


@dataclass
class _Pending:
    message: IncomingFile
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class GroupCommitter:
    """Commits messages into ``incoming`` in batches; see the module's docstring."""

    def __init__(self, queue: Queue, writers: int = 8, share: tuple[int, int] = (0, 1)) -> None:
        self.queue = queue
        self._pending: list[_Pending] = []
        self._wake = threading.Condition()
        self._closed = False
        self._writers = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="mta-fsync")
        self._thread = threading.Thread(target=self._run, name="mta-committer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.committed = 0
        self.spares = Spares(queue.spare, share)

    def open(self, envelope: Envelope) -> IncomingFile:
        return IncomingFile(self.queue, envelope, self.spares)

    async def commit(self, envelope: Envelope, data: bytes) -> None:
        """A whole message at once (a bounce); durable in ``incoming`` when this returns."""
        message = self.open(envelope)
        message.write(data)
        await self.commit_file(message)

    async def commit_file(self, message: IncomingFile) -> None:
        """Returns once the message is durable in ``incoming``: only then may the client hear 250.
        Raises OSError (the file is gone then) or RuntimeError (shutting down)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._wake:
            if self._closed:
                message.discard()
                raise RuntimeError("the queue is shutting down")
            self._pending.append(_Pending(message, loop, future))
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
        def finish(item: _Pending) -> Exception | None:
            try:
                item.message.finish()
            except Exception as exc:  # whatever it is, that message's session hears 451; the committer goes on
                item.message.discard()
                return exc if isinstance(exc, OSError) else OSError(f"queue file write error: {exc!r}")
            return None

        # The committer writes the first message itself while the writers take the others:
        # under load a batch is about three messages, and a hand-off to a thread and back is a
        # wake-up each way, which waits its turn for a core on a busy host.
        others = [self._writers.submit(finish, item) for item in batch[1:]]
        outcomes = [finish(batch[0]), *(future.result() for future in others)]
        try:
            fsync_folder(self.queue.folder("incoming"))
        except OSError as exc:
            # Renamed but not known durable: the client is told 451 and may send again;
            # the file stays (a second copy, never a lost one).
            outcomes = [exc] * len(batch)
        self.batches += 1
        # One wake-up per event loop for the whole batch, not one per message.
        answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], Exception | None]]] = {}
        for item, error in zip(batch, outcomes, strict=True):
            if error is None:
                self.committed += 1
            answers.setdefault(item.loop, []).append((item.future, error))
        for loop, settled in answers.items():
            with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody waits there any more
                loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[None], Exception | None]]) -> None:
    for future, error in settled:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
