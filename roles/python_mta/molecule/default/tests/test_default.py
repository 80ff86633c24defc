"""provision-mta runs, answers SMTP on its address and delivers to a Maildir,
both what it receives over SMTP and what its sendmail command posts.

Runs under ``provision test python_mta`` (testinfra's docker:// backend).
"""

from __future__ import annotations

import time
from typing import Any

SEND = (
    "python3 -c \"import smtplib; s = smtplib.SMTP('{address}', 25, timeout=20); "
    "s.sendmail('someone@example.org', ['scenario@mta1.example.net'], 'Subject: {subject}\\r\\n\\r\\nbody\\r\\n'); s.quit()\""
)


def _delivered(host: Any, subject: str) -> bool:
    for _ in range(100):
        if host.run(f"grep -rl 'Subject: {subject}' /root/Maildir/new").rc == 0:
            return True
        time.sleep(0.2)
    return False


def test_it_runs_and_checks_its_config(host: Any) -> None:
    assert host.run("/opt/provision-mta/bin/provision-mta -c /etc/postfix check").rc == 0
    assert host.process.filter(comm="provision-mta") or host.run("pgrep -f 'provision-mta'").rc == 0


def test_smtp_and_sendmail_deliver_to_the_maildir(host: Any) -> None:
    address = host.check_output("sed -n 's/^inet_interfaces *= *//p' /etc/postfix/main.cf")
    host.check_output(SEND.format(address=address.strip(), subject="over-smtp"))
    assert _delivered(host, "over-smtp")
    host.check_output("printf 'Subject: via-sendmail\\n\\nbody\\n' | /usr/sbin/sendmail scenario")
    assert _delivered(host, "via-sendmail")
