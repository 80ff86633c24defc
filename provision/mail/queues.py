"""``provision mail``: Postfix queue and maintenance commands across an inventory.

One round trip per host: the agent finds every instance (``postmulti -l -a``)
and runs the Postfix command our users know on each (``postqueue -j``,
``postqueue -f``, ``postsuper -r ALL``, ``postsuper -d ALL``, ``postfix
check`` with ``postconf -m``), answering with a summary, not the whole queue.
On a host with provision-mta instead (role python_mta) the same actions run
its ``provision-mta queue ...`` commands, which read and answer alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from provision.agent.protocol import MailAction, MailAnswer, MailInstanceResult
from provision.connectors import connect
from provision.engine.agent_call import call_agent
from provision.engine.hosts import ConnectionOptions, ConnectorFactory, HostSession, HostStatus, HostTarget, call_hosts
from provision.errors import RemoteError
from provision.roles.compiler import Project

ACTIONS: tuple[MailAction, ...] = ("queue", "flush", "requeue", "delete", "hold", "release", "check")


@dataclass
class MailResult:
    host: str
    status: HostStatus = HostStatus.OK
    instances: list[MailInstanceResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None
    """Why the host was skipped (no mail system, or not the instance asked for)."""


def host_target(project: Project, host: str) -> HostTarget:
    """The host with its variables (its connection settings) and where each was set."""
    variables, locations = project.variables(host, project.host_roles(host))
    return HostTarget(host, variables, locations)


def run_mail(
    project: Project,
    hosts: list[str],
    action: MailAction,
    instance: str | None,
    forks: int,
    options: ConnectionOptions | None = None,
    factory: ConnectorFactory = connect,
) -> list[MailResult]:
    """Run one mail action on every host (in parallel, one round trip each); never raises for a host."""

    def work(session: HostSession) -> MailAnswer:
        answer = call_agent(session.connector, {"op": "mail", "action": action, "instance": instance}, 600.0)
        if not answer.get("ok"):
            raise RemoteError(str(answer.get("error")))
        return answer

    targets = [host_target(project, host) for host in hosts]
    results = []
    for call in call_hosts(targets, work, forks=forks, options=options, factory=factory):
        answer = call.value or {}
        result = MailResult(call.host, call.status, list(answer.get("instances", [])), list(call.errors))
        if call.value is not None and not result.instances:
            result.status, result.skipped = HostStatus.SKIPPED, answer.get("absent", "no mail system here")
        failed = [i for i in result.instances if _failed(i)]
        if failed:
            result.status = HostStatus.FAILED
            result.errors = [f"{i['name']}: {_failure_text(i)}" for i in failed]
        results.append(result)
    return results


def held(instance: MailInstanceResult) -> int | None:
    """Messages on hold in the instance's queue after the action, when it was read."""
    queue = instance.get("queue")
    if queue is None or "error" in queue:
        return None
    return int(queue.get("queues", {}).get("hold", 0))


def _failed(instance: MailInstanceResult) -> bool:
    for key in ("check", "result"):
        if key in instance and instance[key]["exit"] != 0:
            return True
    return "error" in instance.get("queue", {})


def _failure_text(instance: MailInstanceResult) -> str:
    for key in ("check", "result"):
        if key in instance and instance[key]["exit"] != 0:
            return str(instance[key]["output"]).strip() or f"exit {instance[key]['exit']}"
    return str(instance.get("queue", {}).get("error", "failed"))


def age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def queue_rows(results: list[MailResult]) -> list[dict[str, Any]]:
    rows = []
    for result in results:
        for instance in result.instances:
            queue = instance.get("queue", {})
            oldest = queue.get("oldest")
            rows.append(
                {
                    "host": result.host,
                    "instance": instance["name"] if instance["name"] != "-" else "postfix",
                    "count": queue.get("count", 0),
                    "deferred": queue.get("queues", {}).get("deferred", 0),
                    "held": queue.get("queues", {}).get("hold", 0),
                    "oldest_age": age(queue.get("now", int(time.time())) - oldest) if oldest else "-",
                    "top_destinations": ", ".join(f"{d} ({n})" for d, n in queue.get("top_destinations", [])) or "-",
                }
            )
    return rows
