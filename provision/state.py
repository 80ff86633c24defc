"""Desired state, actual state and the plan between them: plain data, no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provision.agent.protocol import CsrSpec, KeySpec


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DesiredFile:
    path: str
    content: bytes
    mode: int
    owner: str
    group: str
    role: str
    source: str
    secret: bool = False
    validate: str | None = None
    notify: tuple[str, ...] = ()
    merge: tuple[str, Any] | None = None
    """(kind, data): the content is the host's current file merged with data."""
    change_note: str | None = None
    """Added to the reasons when the content changes (why it is due, in words)."""
    login_check: bool = False
    """A change can lock the operator out (sshd): a new login must work after it, else it is put back."""

    @property
    def sha256(self) -> str:
        return sha256(self.content)


@dataclass(frozen=True)
class DesiredDirectory:
    path: str
    mode: int | None
    """None: only make sure it exists (a mount point takes its filesystem's mode)."""
    owner: str
    group: str
    role: str


DEFAULT_SETTLE = 1.0
"""Seconds after handlers and starts before a service is looked at (Apache dies 15 ms after a graceful that cannot bind)."""


@dataclass(frozen=True)
class DesiredService:
    name: str
    state: str
    enabled: bool
    role: str
    settle: float = DEFAULT_SETTLE
    ports: tuple[str, ...] = ()
    """"address:port" that must accept a connection once the service runs."""


@dataclass(frozen=True)
class Handler:
    name: str
    command: str
    role: str
    check: str | None = None
    supersedes: tuple[str, ...] = ()
    """Handlers that need not run when this one does (a restart makes a reload pointless)."""


@dataclass(frozen=True)
class Validator:
    """A command run on the host against the staged copy of ``files``.

    ``{staging}`` in the command is replaced by the staging root, under
    which every file stands at its absolute path.
    """

    command: str
    files: tuple[str, ...]
    role: str
    description: str = ""


@dataclass
class DesiredState:
    host: str
    files: dict[str, DesiredFile] = field(default_factory=dict)
    directories: dict[str, DesiredDirectory] = field(default_factory=dict)
    packages: list[str] = field(default_factory=list)
    services: list[DesiredService] = field(default_factory=list)
    handlers: dict[str, Handler] = field(default_factory=dict)
    validators: list[Validator] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    """Role facts: name -> shell command, run by the probe."""
    version_packages: list[str] = field(default_factory=list)
    """Packages whose versions roles' requirements and templates look at: the probe
    reports them as installed, or else as apt would install them."""
    generators: list[tuple[str, Any]] = field(default_factory=list)
    """(kind, data): files decided after the probe from what the host has."""
    absent: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Files that must not exist (path -> handlers a removal notifies): a rollback of a run that created them."""


@dataclass(frozen=True)
class FileFact:
    path: str
    exists: bool
    is_file: bool = True
    sha256: str | None = None
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    content: bytes | None = None
    """The current content, sent back by the probe only for a diff."""


@dataclass(frozen=True)
class ServiceFact:
    name: str
    active: bool
    enabled: bool | None


@dataclass
class ActualState:
    host: str
    files: dict[str, FileFact] = field(default_factory=dict)
    directories: dict[str, FileFact] = field(default_factory=dict)
    packages: dict[str, str | None] = field(default_factory=dict)
    services: dict[str, ServiceFact] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    """Package -> installed version, for the packages whose versions the probe reported."""
    extra_contents: dict[str, bytes | None] = field(default_factory=dict)
    """Current content of files a generator asked about."""
    public_keys: dict[str, str | None] = field(default_factory=dict)
    """The public half (PEM) of private keys on the host, computed there."""


@dataclass(frozen=True)
class FileChange:
    desired: DesiredFile
    actual: FileFact
    reasons: tuple[str, ...]
    """Any of 'create', 'content', 'mode', 'owner', 'group'."""

    @property
    def path(self) -> str:
        return self.desired.path

    @property
    def content_changed(self) -> bool:
        return "create" in self.reasons or "content" in self.reasons


@dataclass(frozen=True)
class DirectoryChange:
    desired: DesiredDirectory
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ServiceChange:
    desired: DesiredService
    start: bool
    stop: bool
    enable: bool | None


@dataclass
class Plan:
    host: str
    files: list[FileChange] = field(default_factory=list)
    directories: list[DirectoryChange] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    services: list[ServiceChange] = field(default_factory=list)
    handlers: list[Handler] = field(default_factory=list)
    validators: list[Validator] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Drift that the plan cannot fix by writing (a directory where a file belongs)."""
    csr_requests: list[CsrSpec] = field(default_factory=list)
    """Keys the host makes itself, with a signing request brought back."""
    key_requests: list[KeySpec] = field(default_factory=list)
    """Private keys the host makes itself (DKIM); only their public half comes back."""
    removals: list[str] = field(default_factory=list)
    """Files to remove (they exist, and must not)."""

    @property
    def changed(self) -> bool:
        made = self.csr_requests or self.key_requests
        return bool(self.files or self.directories or self.packages or self.services or made or self.removals)

    @property
    def needs_staging(self) -> bool:
        # A removal is staged too when validators must see the file set without it.
        removal_checked = bool(self.removals and self.validators)
        made = self.csr_requests or self.key_requests
        return bool(self.packages or made or removal_checked) or any(change.content_changed for change in self.files)
