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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from provision.connectors import CountingConnector, connect, settings_from_vars
from provision.engine.agent_call import call_agent
from provision.errors import ConnectionFailure, RemoteError
from provision.roles.compiler import Project

ACTIONS = ("queue", "flush", "requeue", "delete", "hold", "release", "check")


@dataclass
class MailResult:
    host: str
    status: str = "ok"
    instances: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def host_variables(project: Project, host: str) -> dict[str, Any]:
    return project.variables(host, project.host_roles(host))[0]


def run_mail(
    project: Project, hosts: list[str], action: str, instance: str | None, forks: int, options: dict[str, str] | None = None
) -> list[MailResult]:
    """Run one mail action on every host (in parallel); never raises for a host."""

    def one(host: str) -> MailResult:
        result = MailResult(host)
        try:
            connector = CountingConnector(connect(settings_from_vars(host, host_variables(project, host), options)))
        except ConnectionFailure as exc:
            return MailResult(host, "unreachable", errors=[str(exc)])
        try:
            answer = call_agent(connector, {"op": "mail", "action": action, "instance": instance}, 600.0)
            if not answer.get("ok"):
                raise RemoteError(str(answer.get("error")))
            result.instances = list(answer["instances"])
            failed = [i for i in result.instances if _failed(i)]
            if failed:
                result.status = "failed"
                result.errors = [f"{i['name']}: {_failure_text(i)}" for i in failed]
        except ConnectionFailure as exc:
            result.status, result.errors = "unreachable", [str(exc)]
        except RemoteError as exc:
            result.status, result.errors = "failed", [str(exc)]
        finally:
            connector.close()
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts)))) as pool:
        return list(pool.map(one, hosts))


def _failed(instance: dict[str, Any]) -> bool:
    for key in ("check", "result"):
        if key in instance and instance[key]["exit"] != 0:
            return True
    return "error" in instance.get("queue", {})


def _failure_text(instance: dict[str, Any]) -> str:
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
                    "oldest_age": age(queue.get("now", int(time.time())) - oldest) if oldest else "-",
                    "top_destinations": ", ".join(f"{d} ({n})" for d, n in queue.get("top_destinations", [])) or "-",
                }
            )
    return rows
