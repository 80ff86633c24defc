"""SMTP intake on aiosmtpd: Postfix's relay rules and limits, then the durable queue.

Not an open relay: a recipient outside ``mydestination`` is accepted only
from a client in ``mynetworks`` (554 otherwise). More recipients than
``smtpd_recipient_limit`` get 452; a message over ``message_size_limit``
gets 552 (SIZE is advertised). 250 is sent only after the group commit made
the message durable (see ``queue``).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from provision_mta.cleanup import HOPCOUNT_LIMIT, complete_headers, hop_count, qualify, received_line
from provision_mta.config import MtaConfig
from provision_mta.queue import Envelope, GroupCommitter, new_queue_id


class IntakeHandler:
    def __init__(self, config: MtaConfig, committer: GroupCommitter, on_queued: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.committer = committer
        self.on_queued = on_queued

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: SmtpEnvelope, hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        # aiosmtpd reads pipelined commands correctly; it just does not say so.
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, options: list[str]) -> str:
        envelope.mail_from = qualify(address, self.config.myorigin)
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.config.smtpd_recipient_limit:
            return "452 4.5.3 Error: too many recipients"
        recipient = qualify(address, self.config.myorigin)
        domain = recipient.rpartition("@")[2]
        client = session.peer[0] if isinstance(session.peer, tuple) else ""
        if not self.config.is_local_domain(domain) and not self.config.in_mynetworks(client):
            return f"554 5.7.1 <{address}>: Relay access denied"
        envelope.rcpt_tos.append(recipient)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content if envelope.original_content is not None else envelope.content
        assert isinstance(raw, bytes)
        if len(raw) > self.config.message_size_limit:
            return "552 5.3.4 Error: message file too big"
        if hop_count(raw) > HOPCOUNT_LIMIT:
            return "554 5.4.6 Error: too many hops (mail forwarding loop)"
        queue_id = new_queue_id()
        sender = envelope.mail_from or ""
        client = session.peer[0] if isinstance(session.peer, tuple) else ""
        protocol = "ESMTPS" if session.ssl is not None else "ESMTP"
        received = received_line(self.config.myhostname, queue_id, session.host_name or "", client, protocol)
        data = complete_headers(raw, sender, self.config.myhostname, queue_id, received)
        entry = Envelope(queue_id, sender, list(envelope.rcpt_tos), time.time(), client, session.host_name or "", len(data))
        try:
            await self.committer.commit(entry, data)
        except (OSError, RuntimeError):
            return "451 4.3.0 Error: queue file write error"
        self.on_queued()
        return f"250 2.0.0 Ok: queued as {queue_id}"


def tls_context(config: MtaConfig) -> ssl.SSLContext | None:
    if not (config.tls_cert_file and config.tls_key_file):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    return context


class SmtpFactory:
    """Makes one aiosmtpd session per connection, with the current settings:
    after ``reload`` new sessions get the new limits, networks and certificate."""

    def __init__(self, config: MtaConfig, committer: GroupCommitter, on_queued: Callable[[], None] = lambda: None) -> None:
        self.handler = IntakeHandler(config, committer, on_queued)
        self.reload(config)

    def reload(self, config: MtaConfig) -> None:
        self.tls = tls_context(config)
        self.handler.config = config

    def __call__(self) -> SMTP:
        config = self.handler.config
        return SMTP(
            self.handler,
            hostname=config.myhostname,
            data_size_limit=config.message_size_limit,
            enable_SMTPUTF8=True,
            tls_context=self.tls,
            timeout=config.smtpd_timeout,
            ident="provision-mta",
        )
