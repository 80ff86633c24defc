"""The host_vars onboarding writes: one transport per address, HELO names,
a pinned test sender per transport, and the default warm-up schedule."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from provision.errors import ProvisionError


def verify_sender(host: str, service: str) -> str:
    return f"provision-verify+{service}@{host}"


def helo_name(host: str, service: str) -> str:
    """``out1.mx3.example.net`` for host ``mx3.example.net``: the name whose PTR to request."""
    return f"{service}.{host}"


def onboard_vars(host: str, addresses: list[str], ssh: dict[str, Any], today: dt.date | None = None) -> dict[str, Any]:
    """New addresses start on the default warm-up schedule from ``today`` (see roles/postfix/README.md)."""
    if "." not in host:
        raise ProvisionError(f"host {host!r}: onboard needs the host's fully qualified name (mx3.example.net): it names the HELO names")
    seen: set[str] = set()
    for address in addresses:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            raise ProvisionError(f"--address {address!r}: not an IP address") from None
        if str(parsed) in seen:
            raise ProvisionError(f"--address {address}: given twice")
        seen.add(str(parsed))
    values: dict[str, Any] = {key: value for key, value in ssh.items() if value is not None}
    if addresses:
        services = [f"out{number}" for number in range(1, len(addresses) + 1)]
        values["postfix_transports"] = [
            {
                "name": service,
                "bind_address": str(ipaddress.ip_address(address)),
                "helo_name": helo_name(host, service),
                # A new address: little mail at first, more each day (postfix_warmup_volumes).
                "warmup": {"start": (today or dt.date.today()).isoformat()},
            }
            for service, address in zip(services, addresses, strict=True)
        ]
        # All mail is spread over the addresses; the verification senders stay
        # pinned to one transport each so that a test can reach every one.
        values["postfix_transport_selection"] = "random"
        values["postfix_sender_transports"] = {verify_sender(host, service): service for service in services}
    return values
