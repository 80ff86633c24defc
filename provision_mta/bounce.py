"""RFC 3464 delivery status notifications, sent to the envelope sender."""

from __future__ import annotations

import email.utils
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from provision_mta.delivery import Outcome


def bounce_message(myhostname: str, sender: str, queue_id: str, failed: list[Outcome], original: bytes) -> bytes:
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"MAILER-DAEMON@{myhostname} (Mail Delivery System)"
    report["To"] = sender
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = email.utils.formatdate(localtime=True)
    report["Message-ID"] = f"<{queue_id}.bounce@{myhostname}>"
    report["Auto-Submitted"] = "auto-replied"
    lines = [f"This is the mail system at host {myhostname}.", "", "Your message could not be delivered to:", ""]
    lines += [f"<{o.recipient}>: {o.detail}" for o in failed]
    report.attach(MIMEText("\n".join(lines) + "\n"))
    # message/delivery-status: one block of fields for the message, one per recipient.
    status = MIMEBase("message", "delivery-status")
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {myhostname}"
    per_message["X-Provision-Queue-ID"] = queue_id
    blocks: list[Message] = [per_message]
    for outcome in failed:
        block = Message()
        block["Final-Recipient"] = f"rfc822; {outcome.recipient}"
        block["Action"] = "failed"
        block["Status"] = "5.0.0"
        block["Diagnostic-Code"] = f"smtp; {' '.join(outcome.detail.split())}"
        blocks.append(block)
    status.set_payload(blocks)  # type: ignore[arg-type]  # a list of header blocks is what the generator expects here
    report.attach(status)
    headers = original.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    returned = MIMEBase("text", "rfc822-headers")
    returned.set_payload(headers.decode("utf-8", "replace"))
    report.attach(returned)
    return report.as_bytes()
