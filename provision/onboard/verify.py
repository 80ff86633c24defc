"""Sends one test message through every transport and waits for the next hop's 250.

The messages are submitted on the host with Postfix's ``sendmail`` from the
transport's pinned verification sender; arrival is read from Postfix's own
log: the smtp client of that transport (its ``syslog_name``) logging
``status=sent`` for the message's queue ID, with the relay's reply.
"""

from __future__ import annotations

import email.utils
import time
import uuid
from dataclasses import dataclass
from typing import Any

from provision.agent.protocol import MailTestRequest, TestMessage
from provision.connectors.base import Connector
from provision.engine.agent_call import call_agent
from provision.errors import RemoteError
from provision.onboard.transports import verify_sender


@dataclass
class Delivery:
    service: str
    address: str
    message_id: str
    status: str = "not seen"
    relay: str = ""
    detail: str = ""
    program: str = ""
    earlier: bool = False
    """Confirmed by an earlier run's test message (a warming address sends one a day per domain)."""

    @property
    def delivered(self) -> bool:
        return self.status == "sent" and self.program.endswith(f"/{self.service}/smtp")


def _message(host: str, service: str, recipient: str, message_id: str) -> str:
    return (
        f"From: {verify_sender(host, service)}\r\nTo: {recipient}\r\n"
        f"Subject: provision onboard: {host} via {service}\r\nDate: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{message_id}>\r\nX-Provision-Transport: {service}\r\n\r\n"
        f"Test message from 'provision onboard {host}', sent through transport {service}.\r\n"
    )


def send_and_confirm(
    connector: Connector, host: str, transports: list[dict[str, Any]], recipient: str, timeout: float, poll: float = 1.0
) -> tuple[list[Delivery], str]:
    token = uuid.uuid4().hex[:12]
    deliveries = [Delivery(t["name"], str(t["bind_address"]), f"{token}.{t['name']}@{host}") for t in transports]
    # A transport an earlier run confirmed is not sent another message: a re-run is a
    # no-op, and a warming address (one delivery per destination every so often) is not held up.
    senders = {verify_sender(host, d.service): d for d in deliveries}
    look: MailTestRequest = {
        "op": "mail_test",
        "config_directory": "/etc/postfix",
        "submit": [],
        "message_ids": [],
        "senders": list(senders),
    }
    before = call_agent(connector, look, 120.0)
    if not before.get("ok"):
        raise RemoteError(str(before.get("error")))
    for sender, seen in (before.get("senders") or {}).items():
        delivery = senders[sender]
        delivery.status, delivery.relay, delivery.detail = seen.get("status", ""), seen.get("relay", ""), seen.get("detail", "")
        delivery.program, delivery.earlier = seen.get("program", ""), True
    pending = [d for d in deliveries if not d.delivered]
    for delivery in pending:
        delivery.status, delivery.earlier = "not seen", False
    if not pending:
        return deliveries, str(before.get("log", ""))
    submit: list[TestMessage] = [
        {"sender": verify_sender(host, d.service), "recipient": recipient, "text": _message(host, d.service, recipient, d.message_id)}
        for d in pending
    ]
    request: MailTestRequest = {
        "op": "mail_test",
        "config_directory": "/etc/postfix",
        "submit": submit,
        "message_ids": [d.message_id for d in pending],
        "senders": [],
    }
    started = time.monotonic()
    deadline = started + timeout
    log = ""
    while True:
        answer = call_agent(connector, request, 120.0)
        if not answer.get("ok"):
            raise RemoteError(str(answer.get("error")))
        request["submit"] = []
        log = str(answer.get("log", ""))
        # Postfix's log may lag the submission by a moment, not by ten seconds.
        if not answer.get("log_found") and time.monotonic() > started + 10:
            hint = "set postfix_maillog_file or run a syslog daemon"
            raise RemoteError(f"no mail log to confirm delivery from ({log} is missing or empty): {hint}")
        for delivery in pending:
            new = answer["messages"].get(delivery.message_id)
            if new:
                delivery.status = new.get("status", delivery.status)
                delivery.relay, delivery.detail, delivery.program = new.get("relay", ""), new.get("detail", ""), new.get("program", "")
        if all(d.status in ("sent", "bounced") for d in deliveries) or time.monotonic() > deadline:
            return deliveries, log
        time.sleep(poll)
