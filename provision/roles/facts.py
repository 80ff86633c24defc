"""What a host is: its Debian release, Python and package versions, as the
probe reports them, for templates (``host_facts``) and role requirements.

Templates are compiled before any host is contacted (a mistake stops the run
with nothing pushed), when no facts are known yet. There ``host_facts`` is a
:class:`PendingFacts`: every use of it gives a falsy, empty placeholder and
is counted. A host whose compile used facts, or whose roles declare
``requires``, is compiled again once its probe has answered, with the real
facts, before anything is pushed to it; the probe stays one round trip.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from provision.agent.protocol import PackageVersions

FACT_PACKAGES = ("postfix", "apache2", "openssh-server", "openssl")
"""Packages whose versions every probe reports, whatever the roles install."""


@dataclass(frozen=True)
class HostFacts:
    """The facts of one host, from one probe answer."""

    os_id: str = ""
    os_version_id: str = ""
    codename: str = ""
    debian_version: str = ""
    python: str = ""
    installed: Mapping[str, str | None] = field(default_factory=dict)
    """Package -> installed Debian version (None: not installed)."""
    candidates: Mapping[str, str | None] = field(default_factory=dict)
    """Package -> the version apt would install, for packages not installed yet."""

    @classmethod
    def from_probe(cls, facts: Mapping[str, str], versions: Mapping[str, PackageVersions]) -> HostFacts:
        return cls(
            os_id=facts.get("os_id", ""),
            os_version_id=facts.get("os_version_id", ""),
            codename=facts.get("os_version_codename", ""),
            debian_version=facts.get("os_debian_version", ""),
            python=facts.get("python", ""),
            installed={name: entry.get("installed") for name, entry in versions.items()},
            candidates={name: entry.get("candidate") for name, entry in versions.items()},
        )

    def version(self, package: str) -> str | None:
        """The installed version, else the one the next install would bring."""
        return self.installed.get(package) or self.candidates.get(package)

    def release(self) -> str:
        """``Debian 11.11 (bullseye)``, for messages."""
        name = "Debian" if self.os_id in ("", "debian") else self.os_id
        number = self.debian_version or self.os_version_id
        return " ".join(part for part in (name, number, f"({self.codename})" if self.codename else "") if part)

    def for_templates(self) -> dict[str, Any]:
        """``host_facts`` as templates see it."""
        names = sorted({*self.installed, *self.candidates})
        return {
            "release": {
                "id": self.os_id,
                "version_id": self.os_version_id,
                "codename": self.codename,
                "debian_version": self.debian_version,
                "description": self.release(),
            },
            "python": self.python,
            "packages": {name: self.version(name) for name in names},
            "installed": {name: self.installed.get(name) for name in names},
        }


class PendingValue:
    """Any part of ``host_facts`` before the probe: falsy, empty, never equal,
    never a match; each use is counted on its :class:`PendingFacts`, and the
    packages whose versions are looked at are noted (the probe asks apt about
    those only)."""

    def __init__(self, owner: PendingFacts, path: tuple[str, ...] = ()) -> None:
        self._owner = owner
        self._path = path

    def _use(self) -> PendingValue:
        self._owner.uses += 1
        return self

    def _child(self, key: object) -> PendingValue:
        self._use()
        path = (*self._path, str(key))
        if len(path) == 2 and path[0] in ("packages", "installed"):
            self._owner.packages_used.add(path[1])
        return PendingValue(self._owner, path)

    def __getattr__(self, name: str) -> PendingValue:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._child(name)

    def __getitem__(self, key: object) -> PendingValue:
        return self._child(key)

    def __bool__(self) -> bool:
        self._use()
        return False

    def __str__(self) -> str:
        self._use()
        return ""

    def __iter__(self) -> Iterator[Any]:
        self._use()
        return iter(())

    def __len__(self) -> int:
        self._use()
        return 0

    def __contains__(self, item: object) -> bool:
        self._use()
        return False

    def __eq__(self, other: object) -> bool:
        self._use()
        return False

    def __ne__(self, other: object) -> bool:
        self._use()
        return False

    def __lt__(self, other: object) -> bool:
        self._use()
        return False

    __le__ = __gt__ = __ge__ = __lt__

    def __hash__(self) -> int:
        return id(self)


class PendingFacts(PendingValue):
    """``host_facts`` while compiling before the probe."""

    def __init__(self) -> None:
        self.uses = 0
        self.packages_used: set[str] = set()
        super().__init__(self)


def version_compare(value: str, reference: str) -> int:
    """Debian's ordering (dpkg), at the reference's precision: an epoch or a
    Debian revision of ``value`` counts only when ``reference`` has one, so
    ``1:8.4p1-5+deb11u3`` is older than ``9.0`` and equal to ``8.4p1``."""
    from debian.debian_support import version_compare as dpkg_compare

    if ":" not in reference and ":" in value:
        value = value.split(":", 1)[1]
    if "-" not in reference and "-" in value:
        value = value.rsplit("-", 1)[0]
    return int(dpkg_compare(value, reference))


_OPERATORS = {
    "<": lambda c: c < 0,
    "lt": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    "le": lambda c: c <= 0,
    "==": lambda c: c == 0,
    "=": lambda c: c == 0,
    "eq": lambda c: c == 0,
    "!=": lambda c: c != 0,
    "ne": lambda c: c != 0,
    ">=": lambda c: c >= 0,
    "ge": lambda c: c >= 0,
    ">": lambda c: c > 0,
    "gt": lambda c: c > 0,
}


def version_test(value: Any, reference: Any, operator: str = ">=") -> bool:
    """The Jinja test ``value is version('3.6', '>=')`` (Ansible's name and operators)."""
    if operator not in _OPERATORS:
        raise ValueError(f"version test: unknown operator {operator!r} (use one of {', '.join(_OPERATORS)})")
    if isinstance(value, PendingValue):
        value._use()
        return False
    if value is None or str(value) == "":
        raise ValueError("version test on an unknown version (a package neither installed nor known to apt on the host)")
    return bool(_OPERATORS[operator](version_compare(str(value), str(reference))))
