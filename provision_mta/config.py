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
from provision_mta.master_cf import delivery_services, smtpd_maxproc

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
    # Warm-up: seconds between deliveries to one destination (0: none), and NAME_destination_rate_delay per transport.
    "default_destination_rate_delay": "0s",
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
_LARGEST = 2**31 - 1  # Postfix keeps a time in an int
# NAME_destination_concurrency_limit and NAME_destination_rate_delay: NAME is a master.cf transport.
_PER_TRANSPORT = re.compile(r"([\w.-]+?)_destination_(concurrency_limit|rate_delay)")
# Transports Postfix has whether or not master.cf names them (the postfix role's master.cf does).
_BUILT_IN_TRANSPORTS = {"smtp", "relay", "local"}


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


def time_value(name: str, value: str) -> float:
    """A Postfix time: a whole number and an optional unit (s, m, h, d, w); a bare number is seconds."""
    try:
        result = seconds(value)
    except ValueError:
        raise ValueError(f"{name} = {value}: not a time (a whole number with an optional unit s, m, h, d or w)") from None
    if result > _LARGEST:
        raise ValueError(f"{name} = {value}: not a time Postfix can hold (at most {_LARGEST} seconds)")
    return result


def count(name: str, value: str) -> int:
    if not re.fullmatch(r"\d+", value.strip()):
        raise ValueError(f"{name} = {value}: not a whole number (0 or more)")
    return int(value)


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
    default_destination_rate_delay: float = 0.0
    destination_concurrency_limits: dict[str, int] = field(default_factory=dict)
    """NAME_destination_concurrency_limit by transport NAME (local's default 2 included)."""
    destination_rate_delays: dict[str, float] = field(default_factory=dict)
    """NAME_destination_rate_delay by transport NAME, in seconds."""
    unsupported: list[str] = field(default_factory=list)
    unknown_transports: list[str] = field(default_factory=list)
    """NAME_destination_* parameters whose NAME is no transport of master.cf: without effect, said at start."""
    _networks_seen: dict[str, bool] = field(default_factory=dict, repr=False, compare=False)

    def concurrency_limit(self, transport: str) -> int:
        """Deliveries at once to one destination through ``transport`` (0: no limit); 1 when it has a rate delay."""
        if self.rate_delay(transport) > 0:
            return 1
        return self.destination_concurrency_limits.get(transport, self.default_destination_concurrency_limit)

    def rate_delay(self, transport: str) -> float:
        """Seconds between deliveries to one destination through ``transport`` (0: none)."""
        return self.destination_rate_delays.get(transport, self.default_destination_rate_delay)

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
    services = master_cf.read_text() if master_cf.exists() else ""
    maxproc = smtpd_maxproc(services)
    transports = delivery_services(services) | _BUILT_IN_TRANSPORTS
    values = {**DEFAULTS, **given}
    if not values["myhostname"]:
        values["myhostname"] = socket.getfqdn()
    if not values["mydomain"]:
        values["mydomain"] = values["myhostname"].partition(".")[2] or "localdomain"

    def get(name: str) -> str:
        return expand(values[name], values)

    interfaces = split_list(get("inet_interfaces"))
    limits: dict[str, int] = {}
    delays: dict[str, float] = {}
    unknown: list[str] = []
    for name in sorted(values):
        match = _PER_TRANSPORT.fullmatch(name)
        if match is None or match.group(1) == "default":
            continue
        if match.group(1) not in transports:
            unknown.append(name)
        elif match.group(2) == "rate_delay":
            delays[match.group(1)] = time_value(name, get(name))
        else:
            limits[match.group(1)] = count(name, get(name))
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
        default_destination_concurrency_limit=count("default_destination_concurrency_limit", get("default_destination_concurrency_limit")),
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
        local_destination_concurrency_limit=limits["local"],
        default_destination_rate_delay=time_value("default_destination_rate_delay", get("default_destination_rate_delay")),
        destination_concurrency_limits=limits,
        destination_rate_delays=delays,
        unsupported=sorted(name for name in given if name not in DEFAULTS and name not in IGNORED and not _PER_TRANSPORT.fullmatch(name)),
        unknown_transports=unknown,
    )
