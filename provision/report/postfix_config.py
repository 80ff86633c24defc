"""Which smtp transports an instance runs, read from ``postconf`` output.

The host answers with ``postconf -M`` (master.cf services, one per line),
``postconf -Px`` (each service's ``-o`` overrides, ``$name`` expanded) and
``postconf -x`` for the main.cf defaults. Reading Postfix's own view rather
than the files means folded lines, ``-o { ... }`` and ``$myhostname`` are
understood exactly as Postfix understands them.
"""

from __future__ import annotations

from dataclasses import dataclass

# main.cf parameters a transport inherits when master.cf does not override them.
INHERITED = ("myhostname", "smtp_helo_name", "smtp_bind_address", "smtp_bind_address6")


@dataclass(frozen=True)
class Transport:
    """One smtp client service as Postfix will run it."""

    service: str
    bind_address: str | None
    helo_name: str


def parse_settings(output: str) -> dict[str, str]:
    """``name = value`` lines (``postconf -x`` or ``postconf -Px``)."""
    settings: dict[str, str] = {}
    for line in output.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            settings[name.strip()] = value.strip()
        elif line.rstrip().endswith(" ="):
            settings[line.rstrip()[:-2].strip()] = ""
    return settings


def smtp_services(master_output: str) -> list[str]:
    """Names of the ``unix`` services whose command is Postfix's smtp client."""
    names = []
    for line in master_output.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[1] == "unix" and fields[7] == "smtp":
            names.append(fields[0])
    return names


def transports(master_output: str, overrides_output: str, main_output: str) -> list[Transport]:
    """Every smtp client service with the address it binds and the HELO it sends.

    Services that bind no address (Debian's ``smtp`` and ``relay``, when
    main.cf sets no ``smtp_bind_address``) leave by the system's route: the
    report cannot know that address, so they are not listed.
    """
    main = parse_settings(main_output)
    overrides = parse_settings(overrides_output)
    found = []
    for service in smtp_services(master_output):

        def setting(name: str, service: str = service) -> str:
            return overrides.get(f"{service}/unix/{name}", main.get(name, ""))

        address = setting("smtp_bind_address") or setting("smtp_bind_address6") or None
        helo = setting("smtp_helo_name") or main.get("myhostname", "")
        found.append(Transport(service, address, helo))
    return [t for t in found if t.bind_address]
