"""What the inventory says a host should run, for comparison with the host."""

from __future__ import annotations

from typing import Any

from provision.roles.certificates import probe_paths
from provision.roles.compiler import CompiledHost

PRIMARY = "postfix"


def expected_transports(variables: dict[str, Any]) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(instance, service) → (bind address, HELO or None) from the postfix role's variables."""
    wanted: dict[tuple[str, str], tuple[str, str | None]] = {}
    for transport in variables.get("postfix_transports") or []:
        wanted[(PRIMARY, transport["name"])] = (str(transport["bind_address"]), transport.get("helo_name"))
    for instance in variables.get("postfix_instances") or []:
        for transport in instance.get("transports") or []:
            wanted[(instance["name"], transport["name"])] = (str(transport["bind_address"]), transport.get("helo_name"))
    return wanted


def report_certificate_paths(compiled: CompiledHost) -> list[str]:
    """Certificates the host should have: the ssl role's and the ones Postfix is told to use."""
    paths: list[str] = []
    for kind, data in compiled.desired.generators:
        if kind == "certificates":
            paths += probe_paths(data)[0]
    cert_file = (compiled.variables.get("postfix_tls") or {}).get("cert_file")
    if cert_file:
        paths.append(str(cert_file))
    return list(dict.fromkeys(paths))


def report_key_paths(compiled: CompiledHost) -> list[str]:
    """The host's DKIM keys, whose public halves the report compares with DNS."""
    from provision.roles.dkim import key_path

    return [key_path(key) for key in compiled.variables.get("dkim_keys") or []]


def warmup_stages(variables: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(instance, service) → the transport's warm-up stage today ("" without a schedule)."""
    from provision.roles.warmup import NONE, step

    on, volumes = variables.get("postfix_warmup_date"), variables.get("postfix_warmup_volumes") or None
    stages: dict[tuple[str, str], str] = {}
    for transport in variables.get("postfix_transports") or []:
        stages[(PRIMARY, transport["name"])] = step(transport, on, volumes).describe()
    for instance in variables.get("postfix_instances") or []:
        for transport in instance.get("transports") or []:
            stages[(instance["name"], transport["name"])] = step(transport, on, volumes).describe()
    return {key: value for key, value in stages.items() if value != NONE}
