"""Operator commands on the queue, as Postfix users know them
(postqueue -p/-j/-f, postsuper -d/-r/-h/-H): list, json, flush, delete, requeue,
hold, release. A message being delivered (in ``active``) is never touched there:
hold and delete wait for its attempt to end (see :func:`act`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

from provision_mta.queue import CORRUPT, QUEUES, CorruptQueueFile, Envelope, Queue, fsync_folder, read_envelope

# Where each action takes messages from, and where it puts them.
MOVES = {
    "flush": (("deferred",), "incoming"),
    "requeue": (("deferred", "hold", "incoming"), "incoming"),
    "hold": (("incoming", "deferred"), "hold"),
    "release": (("hold",), "incoming"),
}


def _messages(queue: Queue, unreadable: list[tuple[str, str, str]] | None = None) -> Iterator[tuple[str, str, Envelope]]:
    """(queue name, queue ID, envelope) of every readable message, queue by queue;
    the ones that cannot be read are added to ``unreadable`` (queue, ID, why)."""
    for name in QUEUES:
        for queue_id in queue.list(name):
            try:
                yield name, queue_id, read_envelope(queue.folder(name) / queue_id)
            except CorruptQueueFile as exc:
                if unreadable is not None:
                    unreadable.append((name, queue_id, str(exc)))
            except OSError:  # delivered or moved meanwhile
                continue


def listing(queue: Queue) -> list[str]:
    lines = []
    now = time.time()
    unreadable: list[tuple[str, str, str]] = []
    for name, queue_id, envelope in _messages(queue, unreadable):
        mark = {"hold": "!", "active": "*"}.get(name, "")
        age = int(now - envelope.arrival)
        lines.append(f"{queue_id}{mark} {envelope.size:>8} {age:>6}s {envelope.sender or 'MAILER-DAEMON'}")
        for recipient in envelope.recipients:
            reason = envelope.reasons.get(recipient)
            lines.append(f"    {recipient}" + (f"  ({reason})" if reason else ""))
    # As Postfix's corrupt queue: kept for the operator to look at, never delivered.
    unreadable += [(CORRUPT, queue_id, "moved to corrupt") for queue_id in queue.list(CORRUPT)]
    for name, queue_id, why in unreadable:
        try:
            size = (queue.folder(name) / queue_id).stat().st_size
        except OSError:
            continue
        lines.append(f"{queue_id}# {size:>8}         unreadable queue file in {name}/: {why}")
    return lines


def json_lines(queue: Queue) -> list[str]:
    """One JSON object per message, in ``postqueue -j``'s shape, so the tools
    that read Postfix's queue (``provision mail queue``) read this one too."""
    lines = []
    for name, queue_id, envelope in _messages(queue):
        recipients: list[dict[str, str]] = []
        for recipient in envelope.recipients:
            reason = envelope.reasons.get(recipient)
            recipients.append({"address": recipient, **({"delay_reason": reason} if reason else {})})
        message = {
            "queue_name": name,
            "queue_id": queue_id,
            "arrival_time": int(envelope.arrival),
            "message_size": envelope.size,
            "sender": envelope.sender,
            "recipients": recipients,
        }
        lines.append(json.dumps(message, sort_keys=True))
    return lines


# How long hold and delete wait for a message under delivery (in ``active``) to come out of it.
ACTIVE_WAIT = 5.0


def act(queue: Queue, action: str, which: str) -> int:
    """Apply ``action`` to one queue ID or ALL; returns how many messages it touched.
    A message in ``active`` is being delivered and is not touched there; hold and
    delete (as Postfix's postsuper -h/-d, which reach active mail too) wait for it
    to come out, a few seconds at most."""
    if action == "delete":
        sources: tuple[str, ...] = ("maildrop", "incoming", "deferred", "hold", *([CORRUPT] if which != "ALL" else []))
        target = ""
    else:
        sources, target = MOVES[action]
    under_way = [queue_id for queue_id in queue.list("active") if which in ("ALL", queue_id)] if action in ("delete", "hold") else []
    count = sum(_act_on(queue, name, queue_id, target) for name in sources for queue_id in queue.list(name) if which in ("ALL", queue_id))
    deadline = time.monotonic() + ACTIVE_WAIT
    while under_way and time.monotonic() < deadline:
        time.sleep(0.05)
        left = []
        for queue_id in under_way:
            done = any(_act_on(queue, name, queue_id, target) for name in sources)
            if not done and (queue.folder("active") / queue_id).exists():
                left.append(queue_id)
            count += done
        under_way = left
    return count


def _act_on(queue: Queue, name: str, queue_id: str, target: str) -> bool:
    """Delete (no target) or move one message; False when it is not there (any more)."""
    if name == target:
        return False
    try:
        if target:
            queue.move(queue_id, name, target)
        else:
            os.unlink(queue.folder(name) / queue_id)
            fsync_folder(queue.folder(name))
    except FileNotFoundError:  # the queue manager took it meanwhile
        return False
    return True
