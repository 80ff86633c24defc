"""The wire protocol between the controller and the agent: one declared shape.

Every request the controller sends and every answer the agent gives is one
JSON object whose shape is declared here, once, as TypedDicts that both
sides use and ``mypy --strict`` checks. The agent imports this module only
for type checking (under ``TYPE_CHECKING``), so it is never sent to a host;
the syntax stays that of the oldest supported host Python.
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Tuple, TypedDict, Union

# --- shared pieces --------------------------------------------------------


class CommandOutcome(TypedDict):
    """One shell command run on the host."""

    command: str
    exit: int
    output: str
    """Standard output and error, the last 4,000 characters."""
    seconds: float


class _Answer(TypedDict, total=False):
    ok: bool
    error: str


class Failed(TypedDict):
    """What any operation answers when it fails outright."""

    ok: Literal[False]
    error: str


class _Addressed(TypedDict, total=False):
    root: str
    """Manage files under this folder instead of / (set by the controller's call, from the connection settings)."""


# --- probe ----------------------------------------------------------------


class ProbeFile(TypedDict):
    path: str
    sha256: str
    want_content: bool
    """Send the current content back if it differs (for a diff)."""
    always_content: bool
    """Send the current content back in any case (a merged file)."""


class ProbeRequest(_Addressed):
    op: Literal["probe"]
    files: List[ProbeFile]
    directories: List[str]
    packages: List[str]
    services: List[str]
    facts: Dict[str, str]
    """Role facts: name -> shell command."""
    extra_files: List[str]
    """Files a generator wants to read (certificates)."""
    public_keys: List[str]
    """Private keys whose public half (only) comes back."""
    versions: List[str]
    """Packages whose installed versions come back (host facts for roles)."""
    candidates: List[str]
    """Of those, the ones whose candidate version (what apt would install) comes back when not installed."""


class FileStat(TypedDict, total=False):
    exists: bool
    is_file: bool
    is_dir: bool
    mode: int
    owner: str
    group: str
    sha256: str
    content_b64: str
    error: str


class ServiceState(TypedDict):
    active: bool
    enabled: Optional[bool]


class PackageVersions(TypedDict):
    installed: Optional[str]
    """The installed Debian version, or None."""
    candidate: Optional[str]
    """What apt would install (asked only when not installed), or None."""


class ProbeAnswer(_Answer):
    files: Dict[str, FileStat]
    directories: Dict[str, FileStat]
    packages: Dict[str, Optional[str]]
    """Installed version, or None."""
    services: Dict[str, ServiceState]
    facts: Dict[str, str]
    """hostname, python, os_id, os_version_id, os_version_codename, os_debian_version, and the role facts."""
    versions: Dict[str, PackageVersions]
    extra_files: Dict[str, Optional[str]]
    """Base64 content, or None when missing or too large."""
    public_keys: Dict[str, Optional[str]]


# --- stage ----------------------------------------------------------------


class StageFile(TypedDict):
    path: str
    content_b64: str
    mode: int
    validate: Optional[str]
    """A command with %s for the staged copy."""


class ValidatorSpec(TypedDict):
    command: str
    """{staging} stands for the staging root."""
    files: List[str]
    role: str
    description: str


class CsrSpec(TypedDict, total=False):
    name: str
    key_path: str
    common_name: str
    names: List[str]
    key_type: str
    key_size: Optional[int]
    key_mode: int
    owner: Optional[str]
    group: Optional[str]


class KeySpec(TypedDict):
    """A private key the host makes itself (DKIM); only its public half comes back."""

    path: str
    algorithm: str
    """rsa or ed25519"""
    bits: int
    owner: str
    group: str
    name: str
    """What the key is for, in messages (SELECTOR._domainkey.DOMAIN)."""


class StageRequest(_Addressed):
    op: Literal["stage"]
    run_id: str
    packages: List[str]
    files: List[StageFile]
    validators: List[ValidatorSpec]
    csr: List[CsrSpec]
    keys: List[KeySpec]


class Validation(CommandOutcome):
    what: str


class StageAnswer(_Answer, total=False):
    installed: List[str]
    validations: List[Validation]
    csrs: Dict[str, str]
    """CSR name -> PEM of the signing request."""
    keys: Dict[str, str]
    """Key path -> PEM of the public half of the key made (or found) there."""


# --- commit ---------------------------------------------------------------


class CommitDirectory(TypedDict):
    path: str
    mode: Optional[int]
    owner: str
    group: str


class CommitFile(TypedDict):
    path: str
    mode: int
    owner: str
    group: str
    content_changed: bool
    sha256: str


class HandlerSpec(TypedDict):
    name: str
    command: str
    check: Optional[str]


class ServiceSpec(TypedDict):
    name: str
    start: bool
    stop: bool
    enable: bool
    disable: bool


class CommitRequest(_Addressed):
    op: Literal["commit"]
    run_id: str
    directories: List[CommitDirectory]
    files: List[CommitFile]
    handlers: List[HandlerSpec]
    services: List[ServiceSpec]


class HandlerOutcome(CommandOutcome):
    name: str


class CommitAnswer(_Answer, total=False):
    handlers: List[HandlerOutcome]
    services: List[CommandOutcome]
    restored: List[str]
    recovery: List[HandlerOutcome]


# --- mail, report, onboarding's test messages (the agent's mail module) ------


class MailInstance(TypedDict, total=False):
    name: str
    group: str
    enabled: str
    config_directory: str
    mta: str
    """Set to 'provision-mta' where provision's own MTA runs instead of Postfix."""


class QueueSummary(TypedDict, total=False):
    count: int
    bytes: int
    oldest: Optional[int]
    queues: Dict[str, int]
    top_destinations: List[Tuple[str, int]]
    now: int
    error: str


class MailInstanceResult(MailInstance, total=False):
    queue: QueueSummary
    check: CommandOutcome
    map_types: List[str]
    result: CommandOutcome


MailAction = Literal["queue", "flush", "requeue", "delete", "hold", "release", "check"]


class MailRequest(_Addressed):
    op: Literal["mail"]
    action: MailAction
    instance: Optional[str]


class MailAnswer(_Answer, total=False):
    instances: List[MailInstanceResult]
    absent: str
    """Why no instance answered (no mail system here): the host is skipped, not failed."""


class ReportRequest(_Addressed):
    op: Literal["report"]
    certificates: List[str]
    public_keys: List[str]
    """Private keys whose public half the report compares with DNS (DKIM)."""


class ReportInstance(TypedDict, total=False):
    name: str
    config_directory: str
    master: str
    overrides: str
    main: str
    error: str
    queue: QueueSummary
    running: bool
    """``postfix -c DIR status`` succeeded: its master process runs, so its transports can send."""
    enabled: bool
    """multi_instance_enable as postmulti lists it (the primary instance is always enabled)."""


class ReportAnswer(_Answer, total=False):
    instances: List[ReportInstance]
    certificates: Dict[str, Optional[str]]
    addresses: Optional[List[str]]
    """Every address configured on the host (ip -o addr); None without iproute2."""
    public_keys: Dict[str, Optional[str]]


class TestMessage(TypedDict):
    sender: str
    recipient: str
    text: str


class MailTestRequest(_Addressed):
    op: Literal["mail_test"]
    config_directory: str
    submit: List[TestMessage]
    message_ids: List[str]
    senders: List[str]
    """Senders whose latest delivery the log shows (a transport verified before)."""


class SeenMessage(TypedDict, total=False):
    queue_id: str
    program: str
    relay: str
    status: str
    detail: str


class MailTestAnswer(_Answer, total=False):
    log: str
    log_found: bool
    messages: Dict[str, SeenMessage]
    senders: Dict[str, SeenMessage]
    """Sender -> its latest message that the log shows sent."""


Request = Union[ProbeRequest, StageRequest, CommitRequest, MailRequest, ReportRequest, MailTestRequest]
Answer = Union[ProbeAnswer, StageAnswer, CommitAnswer, MailAnswer, ReportAnswer, MailTestAnswer, Failed]

# Which agent modules an operation needs on the host: the transaction always,
# the mail module only for what reads or acts on mail.
MODULES_FOR_OP: Dict[str, Tuple[str, ...]] = {
    "probe": ("core",),
    "stage": ("core",),
    "commit": ("core",),
    "mail": ("core", "mail"),
    "report": ("core", "mail"),
    "mail_test": ("core", "mail"),
}

JsonObject = Dict[str, Any]
