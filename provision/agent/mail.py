"""The agent's mail module: queue commands and what the report reads, stdlib only.

Sent to a host beside ``provision.agent.core`` only for the operations that
need it (``provision mail``, ``provision report``, onboarding's test
messages); a plain converge never carries it. Its operations register in
``OPERATIONS``, which the core finds when this module was sent.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, cast

from provision.agent.core import Failure, public_half, run

if TYPE_CHECKING:
    from provision.agent.protocol import (
        MailAnswer,
        MailInstance,
        MailInstanceResult,
        MailRequest,
        MailTestAnswer,
        MailTestRequest,
        QueueSummary,
        ReportAnswer,
        ReportInstance,
        ReportRequest,
        SeenMessage,
    )


def postfix_instances() -> List[MailInstance]:
    """Every Postfix instance on the host, primary first."""
    if shutil.which("postconf") is None:
        return []
    if shutil.which("postmulti") is None:
        return [{"name": "-", "group": "-", "enabled": "y", "config_directory": "/etc/postfix"}]
    listing = run("postmulti -l -a")
    instances: List[MailInstance] = []
    if listing["exit"] == 0:
        for line in listing["output"].splitlines():
            parts = line.split()
            if len(parts) == 4:
                instances.append({"name": parts[0], "group": parts[1], "enabled": parts[2], "config_directory": parts[3]})
    return instances or [{"name": "-", "group": "-", "enabled": "y", "config_directory": "/etc/postfix"}]


# provision's own MTA (role python_mta) where no Postfix is installed.
PROVISION_MTA = "/opt/provision-mta/bin/provision-mta"


def mail_instances() -> List[MailInstance]:
    """Postfix's instances, or provision-mta as the one instance of a host without Postfix."""
    instances = postfix_instances()
    if not instances and os.path.exists(PROVISION_MTA):
        instances = [{"name": "provision-mta", "group": "-", "enabled": "y", "config_directory": "/etc/postfix", "mta": "provision-mta"}]
    return instances


def queue_command(instance: MailInstance, verb: str) -> str:
    """The command that does ``verb`` (json, flush, requeue, delete, hold, release) to this instance's queue."""
    directory = shlex.quote(instance["config_directory"])
    if instance.get("mta") == "provision-mta":
        return "%s -c %s queue %s" % (PROVISION_MTA, directory, verb if verb in ("json", "flush", "requeue") else verb + " ALL")
    postfix = {
        "json": "postqueue -c %s -j",
        "flush": "postqueue -c %s -f",
        "requeue": "postsuper -c %s -r ALL",
        "delete": "postsuper -c %s -d ALL",
        "hold": "postsuper -c %s -h ALL",
        "release": "postsuper -c %s -H ALL",
    }
    return postfix[verb] % directory


def queue_summary(instance: MailInstance) -> QueueSummary:
    listing = run(queue_command(instance, "json"))
    if listing["exit"] != 0:
        return {"error": listing["output"].strip()}
    count, size = 0, 0
    oldest: Optional[int] = None
    by_queue: Dict[str, int] = {}
    domains: Dict[str, int] = {}
    for line in listing["output"].splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        count += 1
        size += int(message.get("message_size", 0))
        arrival = message.get("arrival_time")
        if arrival is not None and (oldest is None or arrival < oldest):
            oldest = int(arrival)
        queue = message.get("queue_name", "?")
        by_queue[queue] = by_queue.get(queue, 0) + 1
        for recipient in message.get("recipients", []):
            domain = recipient.get("address", "").rpartition("@")[2] or "(local)"
            domains[domain] = domains.get(domain, 0) + 1
    top = sorted(domains.items(), key=lambda item: (-item[1], item[0]))[:5]
    return {"count": count, "bytes": size, "oldest": oldest, "queues": by_queue, "top_destinations": top, "now": int(time.time())}


def op_mail(request: MailRequest) -> MailAnswer:
    action, wanted = request["action"], request.get("instance")
    found = mail_instances()
    # The primary instance is "-" to postmulti and "postfix" in what provision shows.
    instances = [i for i in found if wanted in (None, i["name"], i["config_directory"]) or (wanted == "postfix" and i["name"] == "-")]
    if not instances:
        # Not a failure: a web server has no mail queue. The controller lists the host as skipped.
        if found:
            names = ", ".join("postfix" if i["name"] == "-" else i["name"] for i in found)
            absent = "no instance %s here (instances: %s)" % (wanted, names)
        else:
            absent = "no Postfix instance and no provision-mta here"
        return {"ok": True, "instances": [], "absent": absent}
    results: List[MailInstanceResult] = []
    for instance in instances:
        directory = instance["config_directory"]
        # The instance's own keys, and what this action adds to them.
        entry = cast("MailInstanceResult", dict(instance))
        if action == "queue":
            entry["queue"] = queue_summary(instance)
        elif action == "check" and instance.get("mta") == "provision-mta":
            entry["check"] = run("%s -c %s check" % (PROVISION_MTA, shlex.quote(directory)))
        elif action == "check":
            entry["check"] = run("postfix -c %s check" % shlex.quote(directory))
            entry["map_types"] = run("postconf -c %s -m" % shlex.quote(directory))["output"].split()
        else:
            entry["result"] = run(queue_command(instance, action))
            # What the queue holds now (held, deferred...), as the operator's next question is.
            entry["queue"] = queue_summary(instance)
        results.append(entry)
    return {"ok": True, "instances": results}


# What the report reads: Postfix's own view of its transports (so folded
# lines, -o { } and $name are understood as Postfix does) and public PEM.
REPORT_MAIN = "myhostname smtp_helo_name smtp_bind_address smtp_bind_address6"


def read_certificate(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(256 * 1024)
    except OSError:
        return None
    text = data.decode("ascii", "replace")
    # Only the certificate blocks ever leave the host, whatever else the file holds.
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    return "\n".join(blocks) + "\n" if blocks else ""


def op_report(request: ReportRequest) -> ReportAnswer:
    instances: List[ReportInstance] = []
    for instance in postfix_instances():
        directory = shlex.quote(instance["config_directory"])
        entry: ReportInstance = {
            "name": "postfix" if instance["name"] == "-" else instance["name"],
            "config_directory": instance["config_directory"],
        }
        outputs = {}
        for key, command in (
            ("master", "postconf -c %s -M"),
            ("overrides", "postconf -c %s -Px"),
            ("main", "postconf -c %s -x " + REPORT_MAIN),
        ):
            answer = run(command % directory)
            if answer["exit"] != 0:
                entry["error"] = answer["output"].strip()
            outputs[key] = answer["output"]
        entry["master"], entry["overrides"], entry["main"] = outputs["master"], outputs["overrides"], outputs["main"]
        entry["running"] = run("postfix -c %s status" % directory)["exit"] == 0
        entry["enabled"] = instance["name"] == "-" or instance.get("enabled") != "n"
        entry["queue"] = queue_summary(instance)
        instances.append(entry)
    certificates = {path: read_certificate(path) for path in request.get("certificates", [])}
    return {
        "ok": True,
        "instances": instances,
        "certificates": certificates,
        "addresses": host_addresses(),
        "public_keys": {path: public_half(path) for path in request.get("public_keys", [])},
    }


def host_addresses() -> Optional[List[str]]:
    """Every address configured on the host (``ip -o addr``), or None without iproute2."""
    listing = run("ip -o addr show")
    if listing["exit"] != 0:
        return None
    found = []
    for line in listing["output"].splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("inet", "inet6"):
            found.append(fields[3].split("/")[0])
    return found


# What onboarding's test messages became, read from Postfix's own log:
# cleanup logs the Message-ID with the queue ID, the smtp client (under its
# transport's syslog_name) logs the delivery status of that queue ID.
MESSAGE_ID_LINE = re.compile(r"\b([0-9A-Za-z]{6,}): message-id=<?([^>\s]+)>?")
DELIVERY_LINE = re.compile(r"(postfix[^\[:\s]*)\[\d+\]: ([0-9A-Za-z]{6,}): to=<[^>]*>,.*?relay=([^,]+),.*? status=(\w+) \((.*)\)$")
LOG_TAIL = 4 * 1024 * 1024


def mail_log(directory: str) -> str:
    configured = run("postconf -c %s -h maillog_file" % shlex.quote(directory))["output"].strip()
    return configured if configured and configured.startswith("/") else "/var/log/mail.log"


def read_tail(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - LOG_TAIL))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def op_mail_test(request: MailTestRequest) -> MailTestAnswer:
    directory = request.get("config_directory", "/etc/postfix")
    for message in request.get("submit", []):
        done = subprocess.run(
            ["/usr/sbin/sendmail", "-C", directory, "-f", message["sender"], "-i", "--", message["recipient"]],
            input=message["text"].encode("utf-8"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
        if done.returncode != 0:
            raise Failure("sendmail refused the test message: %s" % done.stdout.decode("utf-8", "replace").strip())
    log = mail_log(directory)
    text = read_tail(log)
    wanted = set(request.get("message_ids", []))
    queue_ids: Dict[str, str] = {}
    for found_id in MESSAGE_ID_LINE.finditer(text):
        if found_id.group(2) in wanted:
            queue_ids[found_id.group(1)] = found_id.group(2)
    found: Dict[str, SeenMessage] = {}
    for line in text.splitlines():
        delivery = DELIVERY_LINE.search(line)
        if delivery and delivery.group(2) in queue_ids:
            program, queue_id, relay, status, detail = delivery.groups()
            found[queue_ids[queue_id]] = {"queue_id": queue_id, "program": program, "relay": relay, "status": status, "detail": detail}
    for queue_id, message_id in queue_ids.items():
        found.setdefault(message_id, {"queue_id": queue_id, "status": "queued"})
    return {"ok": True, "log": log, "log_found": bool(text), "messages": found, "senders": sent_from(text, request.get("senders", []))}


# The queue manager names each message's sender: "QUEUEID: from=<sender>, size=...".
SENDER_LINE = re.compile(r"\b([0-9A-Za-z]{6,}): from=<([^>]*)>")


def sent_from(text: str, senders: List[str]) -> Dict[str, SeenMessage]:
    """Per sender, the latest of its messages the log shows sent (and by which smtp client)."""
    wanted = set(senders)
    by_queue_id = {m.group(1): m.group(2) for m in SENDER_LINE.finditer(text) if m.group(2) in wanted}
    found: Dict[str, SeenMessage] = {}
    for line in text.splitlines():
        delivery = DELIVERY_LINE.search(line)
        if delivery and delivery.group(2) in by_queue_id and delivery.group(4) == "sent":
            program, queue_id, relay, status, detail = delivery.groups()
            found[by_queue_id[queue_id]] = {"queue_id": queue_id, "program": program, "relay": relay, "status": status, "detail": detail}
    return found


OPERATIONS: Dict[str, Callable[[Any], Any]] = {
    "mail": op_mail,
    "report": op_report,
    "mail_test": op_mail_test,
}
