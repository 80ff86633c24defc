"""The MTA's settings, read from the Postfix main.cf the postfix role renders.

Postfix's syntax: ``name = value``, continuation lines start with
whitespace, ``#`` comments, ``$name``/``${name}`` expansion. Parameters the
MTA does not implement are listed once at start (``unsupported``), never
silently ignored.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from provision_mta.address import Routing, literal_address
from provision_mta.master_cf import smtpd_maxproc

DEFAULTS = {
    "myhostname": "",
    "mydomain": "",
    "myorigin": "$myhostname",
    "mydestination": "$myhostname, localhost.$mydomain, localhost",
    "mynetworks": "127.0.0.0/8 [::1]/128",
    "inet_interfaces": "all",
    "queue_directory": "/var/spool/provision-mta",
    "message_size_limit": "10240000",
    "smtpd_recipient_limit": "1000",
    "smtpd_timeout": "300s",
    "relayhost": "",
    "minimal_backoff_time": "300s",
    "maximal_backoff_time": "4000s",
    "queue_run_delay": "300s",
    "maximal_queue_lifetime": "5d",
    "bounce_queue_lifetime": "5d",
    "default_destination_concurrency_limit": "20",
    "smtpd_tls_cert_file": "",
    "smtpd_tls_key_file": "",
    "smtp_bind_address": "",
    "smtp_helo_name": "$myhostname",
    "alias_maps": "hash:/etc/aliases",
    "recipient_delimiter": "",
    "sender_dependent_default_transport_maps": "",
    "home_mailbox": "Maildir/",
    "mail_spool_directory": "/var/mail",
    "allow_mail_to_files": "",
    # Address resolution (see address.route), as Postfix's trivial-rewrite.
    "allow_percent_hack": "yes",
    "swap_bangpath": "yes",
    "resolve_dequoted_address": "yes",
    # Who exists here: unknown local recipients are refused at RCPT (no backscatter).
    "local_recipient_maps": "proxy:unix:passwd.byname $alias_maps",
    # Sessions: per client address (421 past it), and in all (past it, clients wait in the listen queue).
    "smtpd_client_connection_count_limit": "50",
    "smtpd_client_event_limit_exceptions": "$mynetworks",
    "default_process_limit": "100",
    # Free space the queue must keep: MAIL FROM gets 452 below max(this, 1.5 x message_size_limit).
    "queue_minfree": "0",
    "local_destination_concurrency_limit": "2",
}
# Set by the postfix role or Debian's main.cf, harmless to the MTA: not worth a warning.
IGNORED = {
    "compatibility_level", "biff", "append_dot_mydomain", "readme_directory", "smtpd_banner", "alias_database",
    "inet_protocols", "mailbox_size_limit", "smtpd_relay_restrictions", "smtpd_tls_security_level",
    "smtp_tls_security_level", "smtpd_tls_protocols", "smtp_tls_protocols", "smtpd_tls_mandatory_protocols",
    "smtp_tls_mandatory_protocols", "smtpd_tls_loglevel", "maillog_file",
    "command_directory", "daemon_directory", "data_directory", "mail_owner", "setgid_group", "shlib_directory",
    "meta_directory", "manpage_directory", "sample_directory", "html_directory", "sendmail_path", "newaliases_path",
    "mailq_path", "smtpd_tls_session_cache_database", "smtp_tls_session_cache_database", "smtp_tls_CApath",
    "smtpd_tls_chain_files", "smtp_tls_CAfile", "multi_instance_wrapper", "multi_instance_enable",
    "smtpd_peername_lookup",
}  # fmt: skip
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_main_cf(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and current is not None:
            values[current] += " " + line.strip()
            continue
        name, sep, value = line.partition("=")
        if sep:
            current = name.strip()
            values[current] = value.strip()
    return values


def expand(value: str, values: dict[str, str], depth: int = 0) -> str:
    if depth > 20:
        return value
    return re.sub(r"\$\{?(\w+)\}?", lambda m: expand(values.get(m.group(1), ""), values, depth + 1), value)


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)([smhdw]?)", value.strip())
    if not match:
        raise ValueError(f"not a time: {value!r}")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def split_list(value: str) -> list[str]:
    return [item for item in re.split(r"[\s,]+", value) if item]


def boolean(name: str, value: str) -> bool:
    if value.lower() not in ("yes", "no"):
        raise ValueError(f"{name} = {value}: expected yes or no")
    return value.lower() == "yes"


def networks(value: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(item.replace("[", "").replace("]", ""), strict=False) for item in split_list(value)]


def _own_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address of this host: one a socket can be bound to."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


@dataclass
class MtaConfig:
    myhostname: str
    myorigin: str
    mydestination: set[str]
    mynetworks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    inet_interfaces: list[str]
    queue_directory: Path
    message_size_limit: int
    smtpd_recipient_limit: int
    smtpd_timeout: float
    relayhost: str
    minimal_backoff_time: float
    maximal_backoff_time: float
    queue_run_delay: float
    maximal_queue_lifetime: float
    bounce_queue_lifetime: float
    default_destination_concurrency_limit: int
    tls_cert_file: str
    tls_key_file: str
    smtp_bind_address: str
    smtp_helo_name: str
    recipient_delimiter: str = ""
    home_mailbox: str = "Maildir/"
    """As Postfix: ending in "/" a Maildir under the home, else an mbox file there; empty: mbox in mail_spool_directory."""
    mail_spool_directory: Path = Path("/var/mail")
    alias_files: list[Path] = field(default_factory=list)
    allow_mail_to_files: set[str] = field(default_factory=set)
    sender_transport_maps: list[str] = field(default_factory=list)
    allow_percent_hack: bool = True
    swap_bangpath: bool = True
    resolve_dequoted_address: bool = True
    local_recipient_maps: list[str] = field(default_factory=lambda: ["unix:passwd.byname"])
    """Postfix lookup tables: ``unix:passwd.byname`` (proxy: dropped) and type:file; empty: every local name exists."""
    smtpd_client_connection_count_limit: int = 50
    connection_limit_exceptions: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    session_limit: int = 100
    """smtpd's maxproc in master.cf, else default_process_limit: sessions at once, all intake processes
    together (0: no limit but the file descriptors)."""
    queue_minfree: int = 0
    local_destination_concurrency_limit: int = 2
    unsupported: list[str] = field(default_factory=list)
    _networks_seen: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    def in_mynetworks(self, address: str) -> bool:
        # Asked at every RCPT; a client's answer is kept (a few thousand clients at most).
        known = self._networks_seen.get(address)
        if known is None:
            if len(self._networks_seen) >= 4096:
                self._networks_seen.clear()
            known = self._networks_seen[address] = _in(address, self.mynetworks)
        return known

    def limit_exempt(self, address: str) -> bool:
        """smtpd_client_event_limit_exceptions: clients no per-client limit applies to."""
        return _in(address, self.connection_limit_exceptions)

    def is_local_domain(self, domain: str) -> bool:
        """In mydestination, or a domain literal naming one of our addresses (as Postfix's resolver)."""
        domain = domain.lower().rstrip(".")
        literal = literal_address(domain)
        if literal is None:
            return domain in self.mydestination
        if self.inet_interfaces in (["all"], []):
            return _own_address(literal)
        interfaces = ["127.0.0.1", "::1"] if self.inet_interfaces == ["loopback-only"] else self.inet_interfaces
        return any(str(literal) == item.strip("[]") for item in interfaces)

    @property
    def routing(self) -> Routing:
        return Routing(
            self.is_local_domain,
            self.myorigin,
            self.recipient_delimiter,
            self.allow_percent_hack,
            self.swap_bangpath,
            self.resolve_dequoted_address,
        )

    @property
    def minimum_free_space(self) -> int:
        """Postfix's queue_minfree rule: never less than 1.5 times message_size_limit."""
        return max(self.queue_minfree, self.message_size_limit * 3 // 2)


def _in(address: str, where: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped is not None:
        client = client.ipv4_mapped
    return any(client in network for network in where)


def load_config(main_cf: Path) -> MtaConfig:
    given = parse_main_cf(main_cf.read_text(encoding="utf-8")) if main_cf.exists() else {}
    master_cf = main_cf.with_name("master.cf")
    maxproc = smtpd_maxproc(master_cf.read_text()) if master_cf.exists() else None
    values = {**DEFAULTS, **given}
    if not values["myhostname"]:
        values["myhostname"] = socket.getfqdn()
    if not values["mydomain"]:
        values["mydomain"] = values["myhostname"].partition(".")[2] or "localdomain"

    def get(name: str) -> str:
        return expand(values[name], values)

    interfaces = split_list(get("inet_interfaces"))
    return MtaConfig(
        myhostname=get("myhostname"),
        myorigin=get("myorigin"),
        mydestination={d.lower().rstrip(".") for d in split_list(get("mydestination"))},
        mynetworks=networks(get("mynetworks")),
        inet_interfaces=interfaces,
        queue_directory=Path(get("queue_directory")),
        message_size_limit=int(get("message_size_limit")),
        smtpd_recipient_limit=int(get("smtpd_recipient_limit")),
        smtpd_timeout=seconds(get("smtpd_timeout")),
        relayhost=get("relayhost"),
        minimal_backoff_time=seconds(get("minimal_backoff_time")),
        maximal_backoff_time=seconds(get("maximal_backoff_time")),
        queue_run_delay=seconds(get("queue_run_delay")),
        maximal_queue_lifetime=seconds(get("maximal_queue_lifetime")),
        bounce_queue_lifetime=seconds(get("bounce_queue_lifetime")),
        default_destination_concurrency_limit=int(get("default_destination_concurrency_limit")),
        tls_cert_file=get("smtpd_tls_cert_file"),
        tls_key_file=get("smtpd_tls_key_file"),
        smtp_bind_address=get("smtp_bind_address"),
        smtp_helo_name=get("smtp_helo_name"),
        recipient_delimiter=get("recipient_delimiter"),
        home_mailbox=get("home_mailbox"),
        mail_spool_directory=Path(get("mail_spool_directory")),
        # hash:/etc/aliases is built from the text file /etc/aliases: that is what is read.
        alias_files=[Path(item.partition(":")[2]) for item in split_list(get("alias_maps")) if ":" in item],
        allow_mail_to_files=set(split_list(get("allow_mail_to_files"))),
        # "hash:/etc/postfix/sender_transport, randmap:{out1,out2}": split on top-level commas only.
        sender_transport_maps=re.findall(r"[a-z]+:(?:\{[^}]*\}|[^\s,]+)", get("sender_dependent_default_transport_maps")),
        allow_percent_hack=boolean("allow_percent_hack", get("allow_percent_hack")),
        swap_bangpath=boolean("swap_bangpath", get("swap_bangpath")),
        resolve_dequoted_address=boolean("resolve_dequoted_address", get("resolve_dequoted_address")),
        # "proxy:unix:passwd.byname" is the same table read through Postfix's proxymap.
        local_recipient_maps=[item.removeprefix("proxy:") for item in split_list(get("local_recipient_maps"))],
        smtpd_client_connection_count_limit=int(get("smtpd_client_connection_count_limit")),
        connection_limit_exceptions=networks(get("smtpd_client_event_limit_exceptions")),
        session_limit=int(get("default_process_limit")) if maxproc is None else maxproc,
        queue_minfree=int(get("queue_minfree")),
        local_destination_concurrency_limit=int(get("local_destination_concurrency_limit")),
        unsupported=sorted(name for name in given if name not in DEFAULTS and name not in IGNORED),
    )
