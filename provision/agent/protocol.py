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


class Holder(TypedDict):
    """Who holds the host's lock: said to a run that finds the host busy."""

    run_id: str
    user: str
    """The controller's user."""
    controller: str
    """The controller's host name."""
    pid: int
    command: str


class LeaseInfo(Holder, total=False):
    phase: str
    """'staging', 'staged' (between stage and commit), 'committing'."""
    since: float
    expires: float
    """For 'staged': when a run that never came back to commit stops holding the host."""


class JournalInfo(TypedDict):
    """Handlers a commit owes: written before its first rename, cleared once they have run."""

    run_id: str
    state: str
    """'preparing' (nothing replaced yet) or 'committed' (files replaced, handlers owed)."""
    handlers: List[str]
    started: float
    holder: Holder


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


class ProbeAnswer(_Answer, total=False):
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
    journal: Optional[JournalInfo]
    """An interrupted run's journal that no live run holds: its handlers are owed."""
    busy: Optional[LeaseInfo]
    """Another run holds the host (staged, or an operation running)."""
    leftovers: List[str]
    """Staging folders and temporary files an interrupted run left behind."""


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


class _StageOp(_Addressed):
    op: Literal["stage"]
    run_id: str


class StageRequest(_StageOp, total=False):
    holder: Holder
    """Required unless ``check``."""
    packages: List[str]
    files: List[StageFile]
    validators: List[ValidatorSpec]
    csr: List[CsrSpec]
    keys: List[KeySpec]
    check: bool
    """Only validate (a drift check): no lock, no packages, no keys; the staged copies are removed at once."""
    declared: List[str]
    """Every declared file: after installing packages (which write some of them), each is looked at again."""
    absent: List[str]
    """Files the commit will remove: validators see the staged set without them."""


class Validation(CommandOutcome):
    what: str


class StageAnswer(_Answer, total=False):
    seen_after_install: Dict[str, Optional[str]]
    """Declared file -> sha256 (None: missing) once packages were installed: what the commit compares with."""
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


class _CommitFile(TypedDict):
    path: str
    mode: int
    owner: str
    group: str
    content_changed: bool
    sha256: str


class CommitFile(_CommitFile, total=False):
    remove: bool
    """The file goes (``provision rollback`` of a run that created it)."""


class Expected(TypedDict):
    """What the probe saw at a declared path: the commit is a compare-and-swap against it."""

    path: str
    sha256: Optional[str]
    """None: the file did not exist."""


class VerifySpec(TypedDict):
    """A service that must be up after the commit's handlers and starts."""

    service: str
    settle: float
    """Seconds to wait before looking (a reload can fail after it returned)."""
    ports: List[str]
    """"address:port" (or a bare port, on 127.0.0.1) that must accept a connection."""


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


class _CommitOp(_Addressed):
    op: Literal["commit"]
    run_id: str
    holder: Holder


class CommitRequest(_CommitOp, total=False):
    directories: List[CommitDirectory]
    files: List[CommitFile]
    expect: List[Expected]
    handlers: List[HandlerSpec]
    services: List[ServiceSpec]
    verify: List[VerifySpec]
    keep_backups: int
    """Backups of this many runs are kept on the host; older ones are removed."""


class HandlerOutcome(CommandOutcome):
    name: str


class NotRestored(TypedDict):
    path: str
    error: str
    backup: Optional[str]
    """Where the previous content is kept on the host, if it was saved."""


class FinishedJournal(TypedDict, total=False):
    """What a commit did about an interrupted run's journal before its own work."""

    run_id: str
    state: str
    handlers: List[HandlerOutcome]
    renamed: List[str]
    """Files whose rename the interrupted run had not done yet, done now."""
    removed: List[str]
    """Temporary files it left, removed."""
    error: str
    written: Dict[str, Optional[str]]
    """Inside the agent only: each file's sha256 once finished (taken out of the answer)."""


class CommitAnswer(_Answer, total=False):
    written: List[str]
    """Files whose content, mode or owner this commit changed (and kept)."""
    handlers: List[HandlerOutcome]
    services: List[CommandOutcome]
    verified: List[str]
    restored: List[str]
    not_restored: List[NotRestored]
    recovery: List[HandlerOutcome]
    journal: FinishedJournal
    cleaned: List[str]
    """Leftovers of interrupted runs removed (staging folders, temporary files)."""
    backup_dir: str


class _RevertOp(_Addressed):
    op: Literal["revert"]
    run_id: str
    holder: Holder


class RevertRequest(_RevertOp, total=False):
    """Put back what one run changed, from that run's backups (a change that locked the operator out)."""

    paths: List[str]
    expect: List[Expected]
    """Each file must still be what that run wrote, else it is left alone."""
    handlers: List[HandlerSpec]


class RevertAnswer(_Answer, total=False):
    restored: List[str]
    not_restored: List[NotRestored]
    handlers: List[HandlerOutcome]


class BackupEntry(TypedDict):
    """One file in a run's backup manifest (/var/backups/provision/RUN/)."""

    path: str
    existed: bool
    mode: Optional[int]
    owner: Optional[str]
    group: Optional[str]
    sha256_before: Optional[str]
    sha256_after: Optional[str]


class BackupRequest(_Addressed):
    op: Literal["backup"]
    run_id: str


class BackupAnswer(_Answer, total=False):
    run_id: str
    entries: List[BackupEntry]
    contents: Dict[str, str]
    """path -> base64 of the content before the run (files that existed)."""
    runs: List[str]
    """The runs whose backups the host keeps, oldest first."""


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


Request = Union[ProbeRequest, StageRequest, CommitRequest, RevertRequest, BackupRequest, MailRequest, ReportRequest, MailTestRequest]
Answer = Union[ProbeAnswer, StageAnswer, CommitAnswer, RevertAnswer, BackupAnswer, MailAnswer, ReportAnswer, MailTestAnswer, Failed]

# Which agent modules an operation needs on the host: the transaction always,
# the mail module only for what reads or acts on mail.
MODULES_FOR_OP: Dict[str, Tuple[str, ...]] = {
    "probe": ("core",),
    "stage": ("core",),
    "commit": ("core", "commit"),
    "revert": ("core", "commit"),
    "backup": ("core",),
    "mail": ("core", "mail"),
    "report": ("core", "mail"),
    "mail_test": ("core", "mail"),
}

JsonObject = Dict[str, Any]
