"""The queue manager: moves mail from incoming to active, delivers it,
defers with backoff, bounces after ``maximal_queue_lifetime``.

A message file stays in ``active`` while a delivery works on it; after the
attempt its file is rewritten in place (remaining recipients, attempts,
next try) and renamed to ``deferred``, or removed once nothing is left.

A crash mid-attempt leaves it in ``active``, and the next start delivers it
again: at least once, never lost. Not twice, as far as it can be helped:
each delivery made (a local mailbox, a recipient a next hop took) is
appended to the message's journal (``active/.done-ID``) by the thread that
made it, the instant it is made, as Postfix's delivery agents mark a
recipient done in the queue file. A restarted queue manager skips what the
journal lists, so a kill -9 repeats only deliveries that were under way at
that instant (at most ``local_destination_concurrency_limit`` per mailbox).
The journal's keys go into the envelope (``done``) when a message is
deferred, so a recipient whose alias reaches several mailboxes is not
delivered twice to the ones that already have it.

A file it cannot read goes to ``corrupt`` with one log line; an unexpected
error while handling a message defers that message with the reason logged
and a backoff (the file's time says when, as in Postfix, so that it holds
even when the file cannot be rewritten on a full disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import dns.resolver

from provision_mta.address import AddressError, route
from provision_mta.aliases import expand, load_aliases
from provision_mta.bounce import bounce_message
from provision_mta.config import MtaConfig
from provision_mta.connections import CACHE
from provision_mta.delivery import BOUNCED, DEFERRED, DELIVERED, Outcome, maildir_deliver, mbox_deliver, next_hops, smtp_deliver
from provision_mta.destinations import Closed, Destinations
from provision_mta.master_cf import SmtpTransport, sender_map, smtp_transports
from provision_mta.memory import give_back
from provision_mta.queue import CorruptQueueFile, Envelope, GroupCommitter, Queue, new_queue_id, read_data, read_envelope, read_message
from provision_mta.submit import pickup
from provision_mta.throttle import Throttled


def log(text: str) -> None:
    print(f"provision-mta: {text}", file=sys.stderr, flush=True)


class TransportChooser:
    """sender_dependent_default_transport_maps as the postfix role writes it:
    a hash table's source file, then optionally randmap:{...}."""

    def __init__(self, config: MtaConfig, master_cf: Path) -> None:
        self.transports = smtp_transports(master_cf.read_text()) if master_cf.exists() else {}
        self.default = SmtpTransport("smtp", config.smtp_bind_address, config.smtp_helo_name)
        self.helo_default = config.smtp_helo_name
        self.tables: list[dict[str, str] | list[str]] = []
        for item in config.sender_transport_maps:
            kind, _, source = item.partition(":")
            if kind in ("hash", "lmdb", "texthash") and Path(source).exists():
                self.tables.append(sender_map(Path(source).read_text()))
            elif kind == "randmap":
                self.tables.append([name.strip() for name in source.strip("{}").split(",") if name.strip()])

    def choose(self, sender: str) -> SmtpTransport:
        domain = "@" + sender.rpartition("@")[2].lower()
        for table in self.tables:
            name = random.choice(table) if isinstance(table, list) else table.get(sender.lower()) or table.get(domain)
            if name:
                transport = self.transports.get(name, self.default)
                return SmtpTransport(transport.name, transport.bind_address, transport.helo_name or self.helo_default)
        return self.default


class QueueManager:
    def __init__(
        self, config: MtaConfig, queue: Queue, committer: GroupCommitter, master_cf: Path, resolver: dns.resolver.Resolver | None = None
    ) -> None:
        self.queue, self.committer = queue, committer
        self.resolver = resolver or dns.resolver.Resolver()
        self.reload(config, master_cf)
        self.kick = asyncio.Event()
        # Remote destinations are (transport, next hop); local ones ("local", mailbox), as Postfix's
        # local transport with its recipient limit of 1. Each with its concurrency limit and rate delay.
        self.destinations = Destinations()
        self._working: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy_since_trim = False
        self._trouble = Throttled()
        # Messages that may have a delivery journal: those that had one when the queue
        # manager started, and those it wrote one for. The others need no look for it.
        self._journaled: set[str] = set()

    def reload(self, config: MtaConfig, master_cf: Path) -> None:
        """New settings, transports and aliases; mail in the queue stays where it is."""
        chooser = TransportChooser(config, master_cf)
        self.config, self.chooser, self.aliases = config, chooser, load_aliases(config)

    async def run(self, stop: asyncio.Event) -> None:
        self._journaled.update(self.queue.journals())
        for queue_id in self.queue.list("active"):  # left by a crash: deliver what its journal does not list
            self._start(queue_id)
        last_scan = 0.0
        while not stop.is_set():
            try:
                self._pickup()
                for queue_id in self.queue.list("incoming"):
                    try:
                        self.queue.move(queue_id, "incoming", "active")
                    except FileNotFoundError:  # held or deleted by an operator meanwhile
                        continue
                    self._start(queue_id)
                if time.time() - last_scan >= min(self.config.queue_run_delay, 60):
                    last_scan = time.time()
                    self.scan_deferred(force=False)
                CACHE.expire()
                if self._busy_since_trim and not self._working:
                    self._busy_since_trim = False
                    give_back()  # the messages of the last burst are delivered: their memory goes back
            except OSError as exc:  # out of file descriptors, a full disk for pickup: tried again each round, said once a minute
                self._trouble.say("scan", f"queue scan failed: {exc}")
            self.kick.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.kick.wait(), timeout=1.0)
        self.destinations.close()  # what waits for its turn stays in active for the next start
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)
        CACHE.expire(everything=True)

    def _pickup(self) -> None:
        for queue_id, reason in pickup(self.config, self.queue):
            log(f"{queue_id}: moved to corrupt: {reason}")

    def _corrupt(self, queue_id: str, where: str, reason: str) -> None:
        """Out of the way, with one line; the queue goes on."""
        try:
            self.queue.quarantine(queue_id, where)
        except OSError as exc:
            log(f"{queue_id}: unreadable ({reason}) and cannot be moved to corrupt: {exc}")
            return
        self._clear_journal(queue_id)
        log(f"{queue_id}: moved to corrupt: {reason}")

    def scan_deferred(self, force: bool) -> None:
        now = time.time()
        for queue_id in self.queue.list("deferred"):
            path = self.queue.folder("deferred") / queue_id
            try:
                envelope, _ = read_message(path)
                # The later of the envelope's next try and the file's time: a message whose
                # rewrite failed (a full disk) is backed off through its time alone.
                due = max(envelope.next_try, path.stat().st_mtime)
            except CorruptQueueFile as exc:
                self._corrupt(queue_id, "deferred", str(exc))
                continue
            except OSError:
                continue
            if force or due <= now:
                try:
                    self.queue.move(queue_id, "deferred", "active")
                except FileNotFoundError:
                    continue
                self._start(queue_id)

    def _start(self, queue_id: str) -> None:
        if queue_id in self._working:
            return
        self._working.add(queue_id)
        self._busy_since_trim = True
        task = asyncio.create_task(self._deliver(queue_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, queue_id: str) -> None:
        path = Path(os.path.join(self.queue.active, queue_id))
        try:
            # The envelope only: the message is read by each delivery, in its thread, when its
            # turn comes, so the queue manager holds at most a message per delivery thread.
            envelope = read_envelope(path)
        except CorruptQueueFile as exc:
            self._corrupt(queue_id, "active", str(exc))
            self._working.discard(queue_id)
            return
        except OSError as exc:
            log(f"{queue_id}: cannot read: {exc}")
            self._working.discard(queue_id)
            return
        try:
            done = set(envelope.done)
            if queue_id in self._journaled:
                done |= self.queue.journal_read(queue_id)
            outcomes = await self._attempt(envelope, path, done)
            await self._finish(envelope, path, outcomes)
        except Closed:
            # Stopping while it waited for a destination's turn: left in active, where the
            # next start finds it, and its journal keeps what was delivered meanwhile.
            log(f"{queue_id}: left in the active queue for the next start")
        except Exception as exc:  # a bug or a full disk must not strand the message in active, nor stop the others
            self._defer_after_error(envelope, f"{type(exc).__name__}: {exc}")
        finally:
            self._working.discard(queue_id)

    def _defer_after_error(self, envelope: Envelope, reason: str) -> None:
        backoff = self._backoff(envelope.attempts + 1)
        log(f"{envelope.queue_id}: delivery failed: {reason}; deferred for {backoff:.0f} s")
        target = self.queue.folder("deferred") / envelope.queue_id
        try:
            self.queue.move(envelope.queue_id, "active", "deferred")
            later = time.time() + backoff
            os.utime(target, (later, later))  # an inode change: works on a full disk too
        except OSError as exc:
            log(f"{envelope.queue_id}: cannot defer: {exc}")

    def _backoff(self, attempts: int) -> float:
        doublings = min(max(attempts - 1, 0), 32)  # past that the maximum holds anyway; 2**huge would not fit a float
        return float(min(self.config.maximal_backoff_time, self.config.minimal_backoff_time * 2**doublings))

    async def _attempt(self, envelope: Envelope, path: Path, done: set[str]) -> list[Outcome]:
        routing = self.config.routing
        by_domain: dict[str, list[str]] = defaultdict(list)
        outcomes: list[Outcome] = []
        locals_: list[tuple[str, str]] = []
        for recipient in envelope.recipients:
            try:
                where = route(recipient, routing)
            except AddressError as exc:
                outcomes.append(Outcome(recipient, BOUNCED, f"bad address syntax: {exc}"))
                continue
            if where.local:
                locals_.append((recipient, where.user))
            else:
                by_domain[where.domain].append(where.address)
        mailboxes: set[str] = set()  # as Postfix's duplicate filter: one copy per mailbox and message
        deliveries = []
        for recipient, user in locals_:
            expansion = expand(user, self.aliases, routing, self.config.allow_mail_to_files)
            for mailbox in expansion.local_users:
                if mailbox in mailboxes:
                    outcomes.append(Outcome(recipient, DELIVERED, f"duplicate of the copy delivered to {mailbox}"))
                    continue
                mailboxes.add(mailbox)
                if f"local:{mailbox}" not in done:
                    deliveries.append(self._local(envelope, recipient, mailbox, path))
            outcomes += [Outcome(recipient, BOUNCED, f"{target}: {why}") for target, why in expansion.refused]
            for address in expansion.remote:
                by_domain[address.rpartition("@")[2].lower()].append(address)
        transport = self.chooser.choose(envelope.sender)
        # The usual case, one destination and nothing local: the queue file goes
        # the moment the next hop says 250 (see smtp_deliver).
        sole = len(by_domain) == 1 and not locals_
        remote = []
        for domain, recipients in by_domain.items():
            # An address reached twice (given, and again through an alias) gets one RCPT.
            pending = [r for r in dict.fromkeys(recipients) if f"smtp:{r}" not in done]
            if pending:
                remote.append(self._remote(domain, pending, envelope, path, transport, sole))
        if deliveries:
            local_outcomes, remote_outcomes = await asyncio.gather(asyncio.gather(*deliveries), asyncio.gather(*remote))
            outcomes += local_outcomes
        elif len(remote) == 1:  # the usual case: no task, no gathering
            remote_outcomes = [await remote[0]]
        else:
            remote_outcomes = await asyncio.gather(*remote)
        for result in remote_outcomes:
            outcomes += result
        return outcomes

    async def _local(self, envelope: Envelope, recipient: str, user: str, path: Path) -> Outcome:
        async with self.destinations.slot("local", user, self.config.concurrency_limit("local"), self.config.rate_delay("local")):
            return await asyncio.to_thread(self._local_delivery, envelope, recipient, user, path)

    def _local_delivery(self, envelope: Envelope, recipient: str, user: str, path: Path) -> Outcome:
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            return Outcome(recipient, BOUNCED, f"unknown user: {user}")
        try:
            _envelope, data = read_message(path)
        except OSError as exc:
            return Outcome(recipient, DEFERRED, f"cannot read the queue file: {exc}")
        # As Postfix's local(8): the envelope, kept in the delivered copy.
        newline = b"\r\n" if b"\r\n" in data[:1000] else b"\n"
        stamped = f"Return-Path: <{envelope.sender}>".encode() + newline + f"Delivered-To: {recipient}".encode() + newline + data
        mailbox = self.config.home_mailbox
        if mailbox.endswith("/"):
            where, kind = Path(account.pw_dir) / mailbox, "maildir"
        else:
            where = Path(account.pw_dir) / mailbox if mailbox else self.config.mail_spool_directory / user
            kind = "mailbox"
        try:
            if kind == "maildir":
                maildir_deliver(where, stamped, account.pw_uid, account.pw_gid)
            else:
                mbox_deliver(where, envelope.sender, stamped, account.pw_uid, account.pw_gid)
        except OSError as exc:
            return Outcome(recipient, DEFERRED, f"{kind} delivery failed: {exc}")
        self._journal(envelope.queue_id, f"local:{user}")
        return Outcome(recipient, DELIVERED, f"{kind} {where}")

    def _journal(self, queue_id: str, key: str) -> None:
        self._journaled.add(queue_id)  # before the file: a journal is never overlooked
        try:
            self.queue.journal_done(queue_id, key)
        except OSError as exc:  # the delivery stands; a crash before the next rewrite would repeat it
            log(f"{queue_id}: cannot journal the delivery to {key}: {exc}")

    async def _remote(
        self, domain: str, recipients: list[str], envelope: Envelope, path: Path, transport: SmtpTransport, sole: bool
    ) -> list[Outcome]:
        # The next hop, as Postfix's queue names: the relayhost when there is one, else the domain.
        nexthop = self.config.relayhost or domain
        limit, delay = self.config.concurrency_limit(transport.name), self.config.rate_delay(transport.name)
        async with self.destinations.slot(transport.name, nexthop, limit, delay):
            helo = transport.helo_name or self.config.myhostname
            relayhost, resolver = self.config.relayhost, self.resolver

            def accepted(outcomes: list[Outcome]) -> None:
                if sole and all(o.status == DELIVERED for o in outcomes):
                    with contextlib.suppress(FileNotFoundError):
                        self.queue.retire(path, envelope.size)  # a crash from here on cannot send it again
                    return
                for outcome in outcomes:
                    if outcome.status == DELIVERED:
                        self._journal(envelope.queue_id, f"smtp:{outcome.recipient}")

            def deliver() -> list[Outcome]:
                # One trip to a thread for the whole delivery: the next hop's lookup, reading, sending.
                try:
                    hops = next_hops(domain, relayhost, resolver)
                except LookupError as exc:
                    return [Outcome(r, BOUNCED, str(exc)) for r in recipients]
                except ConnectionError as exc:
                    return [Outcome(r, DEFERRED, str(exc)) for r in recipients]
                try:
                    data = read_data(path)
                except (OSError, CorruptQueueFile) as exc:
                    return [Outcome(r, DEFERRED, f"cannot read the queue file: {exc}") for r in recipients]
                return smtp_deliver(hops, envelope.sender, recipients, data, transport.bind_address, helo, on_accepted=accepted)

            return await asyncio.to_thread(deliver)

    async def _finish(self, envelope: Envelope, path: Path, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:  # Postfix's log line, for operators and for onboarding's check
            status = {"delivered": "sent"}.get(outcome.status, outcome.status)
            print(f"provision-mta: {envelope.queue_id}: to=<{outcome.recipient}>, status={status} ({outcome.detail})", flush=True)
        deferred = [o for o in outcomes if o.status == DEFERRED]
        failed = [o for o in outcomes if o.status == BOUNCED]
        # Bounces (null sender) have their own lifetime, as in Postfix.
        lifetime = self.config.maximal_queue_lifetime if envelope.sender else self.config.bounce_queue_lifetime
        if deferred and time.time() - envelope.arrival > lifetime:
            failed += [Outcome(o.recipient, BOUNCED, f"gave up after {envelope.attempts + 1} attempts: {o.detail}") for o in deferred]
            deferred = []
        if failed and envelope.sender:  # never a bounce for a bounce (null sender)
            bounce_id = new_queue_id()
            _envelope, data = read_message(path)
            text = bounce_message(self.config.myhostname, envelope.sender, envelope.queue_id, failed, data)
            del data
            await self.committer.commit(Envelope(bounce_id, "", [envelope.sender], time.time()), text)
            self.kick.set()
        if deferred:
            envelope.recipients = list(dict.fromkeys(o.recipient for o in deferred))
            envelope.attempts += 1
            envelope.next_try = time.time() + self._backoff(envelope.attempts)
            envelope.reasons = {o.recipient: o.detail for o in deferred}
            envelope.done = sorted(set(envelope.done) | self.queue.journal_read(envelope.queue_id))
            self.queue.rewrite_envelope("active", envelope)
            self._clear_journal(envelope.queue_id)
            self.queue.move(envelope.queue_id, "active", "deferred")
        else:
            # Gone already when the next hop's 250 removed it. Not fsync'd: undone by a
            # power loss, the removal means a second delivery, never a lost message.
            with contextlib.suppress(FileNotFoundError):
                self.queue.retire(path, envelope.size)
            self._clear_journal(envelope.queue_id)

    def _clear_journal(self, queue_id: str) -> None:
        if queue_id in self._journaled:
            self.queue.journal_clear(queue_id)
            self._journaled.discard(queue_id)
