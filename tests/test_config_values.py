"""Every string a role writes into a config: refused, or written so that the
service reads it back unchanged (the lab tests read it back: tests/lab/test_config_values.py).

Each string-like variable of every bundled role (found by walking its
role.yml, so a new variable is covered the day it is added) is fed the
characters that Apache, Postfix (main.cf, master.cf, lookup tables, aliases),
sshd, fstab and shells treat specially. A value must either be refused when
the host is compiled, naming the variable, or be one this file lists as
accepted for that variable, with the reason it is safe there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from provision.errors import ProvisionError, TemplateError
from provision.roles.loader import RoleLoader, available_roles
from provision.roles.variables import VariableSpec
from tests.conftest import ROOT

ROLES_DIR = ROOT / "roles"

# The characters config formats read specially, each inserted after the
# first character of a valid value (or at an end where the end matters).
SPECIAL: dict[str, Callable[[str], str]] = {
    "space": lambda v: v[:1] + " " + v[1:],
    "tab": lambda v: v[:1] + "\t" + v[1:],
    "double quote": lambda v: v[:1] + '"' + v[1:],
    "single quote": lambda v: v[:1] + "'" + v[1:],
    "backslash": lambda v: v[:1] + "\\" + v[1:],
    "trailing backslash": lambda v: v + "\\",
    "leading space": lambda v: " " + v,
    "trailing space": lambda v: v + " ",
    "hash": lambda v: v[:1] + "#" + v[1:],
    "leading hash": lambda v: "#" + v,
    "dollar": lambda v: v[:1] + "$" + v[1:],
    "dollar brace": lambda v: v[:1] + "${HOME}" + v[1:],
    "open brace": lambda v: v[:1] + "{" + v[1:],
    "close brace": lambda v: v[:1] + "}" + v[1:],
    "braces": lambda v: v[:1] + "{x}" + v[1:],
    "comma": lambda v: v[:1] + "," + v[1:],
    "colon": lambda v: v[:1] + ":" + v[1:],
    "semicolon": lambda v: v[:1] + ";" + v[1:],
    "equals": lambda v: v[:1] + "=" + v[1:],
    "angle brackets": lambda v: v[:1] + "<x>" + v[1:],
    "parentheses": lambda v: v[:1] + "(x)" + v[1:],
    "percent": lambda v: v[:1] + "%" + v[1:],
    "at": lambda v: v[:1] + "@" + v[1:],
    "pipe": lambda v: v[:1] + "|" + v[1:],
    "backquote": lambda v: v[:1] + "`" + v[1:],
    "dot dot": lambda v: v[:1] + "/../" + v[1:],
    "upper case": lambda v: v.upper(),
    "newline": lambda v: v[:1] + "\nX" + v[1:],
    "carriage return": lambda v: v[:1] + "\rX" + v[1:],
    "nul": lambda v: v[:1] + "\x00" + v[1:],
    "escape": lambda v: v[:1] + "\x1b[2J" + v[1:],
}

HOST = "mx1.example.net"
# A valid configuration per role in which every list and mapping has one entry,
# so that every string variable has a place to put a hostile value.
BASE: dict[str, dict[str, Any]] = {
    "apache": {
        "apache_listen": ["80"],
        "apache_server_name": "web.example.net",
        "apache_server_admin": "webmaster@example.net",
        "apache_modules": ["headers"],
        "apache_module_handlers": {"php-script": "php"},
        "apache_access_log": {"format": "combined", "path": "/var/log/apache2/access.log", "pattern": "access_log.%Y"},
        "apache_vhosts": [
            {
                "server_name": "www.example.net",
                "aliases": ["alias.example.net"],
                "listen": "*:80",
                "document_root": "/srv/www",
                "directories": [{"path": "/srv/www/up", "options": ["Indexes"], "allow_override": ["None"], "require": "all granted"}],
                "locations": [{"path": "/status", "require": "all granted", "handler": "server-status"}],
                "handlers": {"cgi-script": [".cgi"]},
                "tls": {"cert_file": "/etc/ssl/w.pem", "key_file": "/etc/ssl/w.key", "chain_file": "/etc/ssl/c.pem"},
            }
        ],
    },
    "postfix": {
        "postfix_myhostname": "mx1.example.net",
        "postfix_mydomain": "example.net",
        "postfix_myorigin": "example.net",
        "postfix_mydestination": ["localhost"],
        "postfix_mynetworks": ["127.0.0.0/8"],
        "postfix_inet_interfaces": ["127.0.0.5"],
        "postfix_relayhost": "[relay.example.net]:587",
        "postfix_compatibility_level": "3.6",
        "postfix_maillog_file": "/var/log/postfix.log",
        "postfix_smtpd_banner": "$myhostname ESMTP",
        "postfix_smtpd_timeout": "300s",
        "postfix_maximal_queue_lifetime": "5d",
        "postfix_bounce_queue_lifetime": "5d",
        "postfix_queue_run_delay": "300s",
        "postfix_minimal_backoff_time": "300s",
        "postfix_maximal_backoff_time": "4000s",
        "postfix_main": {"smtpd_helo_restrictions": "permit_mynetworks"},
        "postfix_transports": [
            {
                "name": "out1",
                "bind_address": "127.0.0.11",
                "helo_name": "out1.example.net",
                "options": {"smtp_connect_timeout": "10s"},
                "warmup": {"start": "2026-12-01"},
            }
        ],
        "postfix_warmup_date": "2026-12-10",
        "postfix_transport_selection": "sender",
        "postfix_sender_transports": {"@news.example.net": "out1"},
        "postfix_aliases": {"postmaster": "root"},
        "postfix_access": {
            "client": {"192.0.2.1": "REJECT go away"},
            "sender": {"spam@example.com": "REJECT"},
            "recipient": {"abuse@example.net": "OK"},
        },
        "postfix_tls": {"cert_file": "/etc/ssl/mx.pem", "key_file": "/etc/ssl/mx.key", "protocols": ">=TLSv1.2"},
        "postfix_instances": [
            {
                "name": "postfix-out",
                "group": "mta",
                "inet_interfaces": ["127.0.0.6"],
                "myhostname": "out.example.net",
                "main": {"smtpd_helo_restrictions": "permit_mynetworks"},
                "transports": [
                    {
                        "name": "bulk1",
                        "bind_address": "127.0.0.21",
                        "helo_name": "bulk1.example.net",
                        "options": {"smtp_connect_timeout": "10s"},
                        "warmup": {"start": "2026-12-01"},
                    }
                ],
                "transport_selection": "sender",
                "sender_transports": {"@bulk.example.net": "bulk1"},
            }
        ],
    },
    "fstab": {"fstab_entries": [{"device": "/dev/sdb1", "mount_point": "/srv/data", "fstype": "ext4", "options": ["noatime"]}]},
    "motd": {
        "motd_message": "Managed host",
        "motd_contact": "root@example.net",
        "motd_lines": ["Backups at 02:00"],
        "motd_template": "motd.j2",
    },
    "sshd": {"sshd_allow_groups": ["admins"], "sshd_banner_text": "Authorised use only"},
    "python_mta": {"python_mta_dns_server": "127.0.0.53:53"},
    "addresses": {"addresses_interface": "eth0", "addresses_extra": [{"address": "192.0.2.11", "interface": "eth1"}]},
    "dkim": {
        "dkim_keys": [{"domain": "example.net", "selector": "mx1-2026"}],
        "dkim_address": "127.0.0.1",
        "dkim_internal_hosts": ["127.0.0.0/8"],
        "dkim_records_dir": "/srv/dkim",
    },
}
# Strings that never reach a config file (they name files on the controller,
# or are handler names, PEM data written as it is, or a certificate's fields).
NOT_IN_A_CONFIG = {"ssl"}
STRING_TYPES_EXCLUDED = {"int", "float", "bool", "port", "mode"}


def string_paths(prefix: str, spec: VariableSpec) -> Iterator[str]:
    """Paths of every string a variable holds: a.b, a[] (list item), a{key}, a{} (mapping value)."""
    if spec.options:
        for key, option in spec.options.items():
            yield from string_paths(f"{prefix}.{key}", option)
    elif spec.elements is not None:
        yield from string_paths(prefix + "[]", spec.elements)
    elif spec.type == "dict":
        yield prefix + "{key}"
        yield from string_paths(prefix + "{}", spec.values or VariableSpec("value"))
    elif spec.type not in STRING_TYPES_EXCLUDED and not spec.choices:
        yield prefix


def all_paths() -> list[tuple[str, str]]:
    loader = RoleLoader([ROLES_DIR])
    found = []
    for role_name in available_roles([ROLES_DIR]):
        if role_name in NOT_IN_A_CONFIG:
            continue
        role = loader.get(role_name)
        for name, spec in role.variables.items():
            if role_name == "python_mta" and name.startswith("postfix_"):
                continue  # the postfix role's own variables, covered there
            found += [(role_name, path) for path in string_paths(name, spec)]
    return found


def _steps(path: str) -> list[str]:
    steps, current = [], ""
    for char in path:
        if char in ".[{" and current:
            steps.append(current)
            current = ""
        current += char
    steps.append(current)
    return [s.lstrip(".") for s in steps]


def put(values: dict[str, Any], path: str, make: Callable[[str], str]) -> tuple[dict[str, Any], str]:
    """A copy of ``values`` with the string at ``path`` replaced by make(it); and the new string."""
    result = copy.deepcopy(values)
    steps = _steps(path)
    holder: Any = result
    for step in steps[:-1]:
        holder = holder[0] if step == "[]" else next(iter(holder.values())) if step == "{}" else holder[step]
    last = steps[-1]
    if last == "{key}":
        old = next(iter(holder))
        new = make(old)
        value = holder.pop(old)
        holder[new] = value
        return result, new
    if last == "[]":
        new = make(str(holder[0]))
        holder[0] = new
    elif last == "{}":
        key = next(iter(holder))
        new = make(str(holder[key]))
        holder[key] = new
    else:
        new = make(str(holder[last]))
        holder[last] = new
    return result, new


def compile_variants(folder: Path, role: str, variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, str] | ProvisionError]:
    """One inventory, one host per variant: each host's rendered files, or the error that refused it."""
    from provision.roles.compiler import Project

    (folder / "host_vars").mkdir(parents=True)
    hosts = {name: f"h{index}.example.net" for index, name in enumerate(variants)}
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": dict.fromkeys(hosts.values())}}))
    for name, host in hosts.items():
        (folder / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(variants[name]))
    (folder / "site.yml").write_text(f"- hosts: all\n  roles: [{role}]\n")
    project = Project.load(folder)
    results: dict[str, dict[str, str] | ProvisionError] = {}
    for name, host in hosts.items():
        try:
            compiled = project.compile(host)
        except ProvisionError as exc:
            results[name] = exc
        else:
            results[name] = {path: entry.content.decode("utf-8", "replace") for path, entry in compiled.desired.files.items()}
    return results


PRINTABLE = set(SPECIAL) - {"newline", "carriage return", "nul", "escape"}
# Postfix expands $name in a value and splits file lists at commas and whitespace.
POSTFIX_FILE = PRINTABLE - {"space", "tab", "comma", "dollar", "dollar brace", "open brace", "close brace", "braces"}
POSTFIX_FILE -= {"dot dot", "leading hash", "leading space", "trailing space"}
# What each variable accepts of SPECIAL (everything else must be refused), and why it is safe:
# - apache paths, document_root, tls files, access log path: written by apache_quote ("..." with \\ and \"), so
#   only ${...} (replaced on every line, quoted or not), . or .. parts and a non-absolute start are refused;
# - Require: written as it is, so only ${...} and a trailing backslash (line continuation) are refused;
# - ServerAdmin and motd_contact: an email address (dot-atom), quoted by apache_word when not a plain word;
# - postfix values (main.cf, -o): $ expansion is Postfix's own syntax; whitespace Postfix would trim and an
#   unmatched { or } are refused, and -o { name = value } carries spaces;
# - lookup table keys (access maps, sender_transports): anything but whitespace and a leading #;
# - aliases: addresses as they are; commands and files are written in double quotes;
# - fstab: device and mount point escaped as fstab(5) says (\040, \011, \134); options never hold a " or \;
# - motd and the sshd banner: plain text files shown as they are (control characters are refused everywhere);
# - host names, addresses, durations, names with patterns: upper case only (DNS and Postfix ignore case).
# - DKIM domains and selectors: DNS labels (letters, digits, -), no trailing dot (SigningTable's *@DOMAIN. matches no
#   From:); opendkim compares SigningTable patterns case-insensitively (REG_ICASE), so upper case keeps its meaning;
# - opendkim's networks: written as its lookup spells them (inet_ntop, network address, /N; see opendkim_network), and
#   its milter address is IPv4 (Socket inet:PORT@ADDRESS is libmilter's IPv4 family);
# - interface names: a kernel name (no ":" alias label, no "=", 15 bytes), one word in /etc/network/interfaces and in
#   `ip addr add ADDRESS dev NAME`; names are case-sensitive, so upper case is another interface, not a quoting problem;
# - addresses: no IPv6 zone index (fe80::1%any text), which Python's ipaddress accepts with any characters after %;
# - dates: YYYY-MM-DD only; a config gets the ISO date back and the weights computed from it;
# - dkim_records_dir: a folder on the controller, written by Python and never by a config: any absolute path without
#   . or .. parts.
ACCEPTED: dict[tuple[str, str], set[str]] = {
    ("apache", "apache_listen[]"): {"upper case"},  # an address[:port] type (issue 14): a colon only where it separates the port
    ("apache", "apache_server_name"): {"upper case"},
    ("apache", "apache_server_admin"): {
        "single quote",
        "hash",
        "leading hash",
        "open brace",
        "close brace",
        "braces",
        "equals",
        "percent",
        "pipe",
        "backquote",
        "upper case",
    },
    ("apache", "apache_modules[]"): set(),
    ("apache", "apache_module_handlers{key}"): {"colon", "equals", "pipe", "dot dot"},
    ("apache", "apache_module_handlers{}"): set(),
    ("apache", "apache_access_log.format"): {"upper case"},
    ("apache", "apache_access_log.path"): PRINTABLE - {"dollar brace", "dot dot", "leading hash", "leading space"},
    ("apache", "apache_access_log.pattern"): {"percent", "upper case"},
    ("apache", "apache_vhosts[].server_name"): {"upper case"},
    ("apache", "apache_vhosts[].aliases[]"): {"upper case"},
    ("apache", "apache_vhosts[].listen"): {"upper case"},
    ("apache", "apache_vhosts[].document_root"): PRINTABLE - {"dollar brace", "dot dot", "leading hash", "leading space"},
    ("apache", "apache_vhosts[].directories[].path"): PRINTABLE - {"dollar brace", "dot dot", "leading hash", "leading space"},
    ("apache", "apache_vhosts[].directories[].options[]"): {"upper case"},
    ("apache", "apache_vhosts[].directories[].allow_override[]"): {"comma", "equals", "upper case"},
    ("apache", "apache_vhosts[].directories[].require"): {"space", "tab", "leading space", "trailing space", "upper case"},
    ("apache", "apache_vhosts[].locations[].path"): {
        "single quote",
        "backslash",
        "trailing backslash",
        "hash",
        "dollar",
        "open brace",
        "close brace",
        "braces",
        "comma",
        "colon",
        "semicolon",
        "equals",
        "angle brackets",
        "parentheses",
        "percent",
        "at",
        "pipe",
        "backquote",
        "upper case",
    },
    ("apache", "apache_vhosts[].locations[].require"): {"space", "tab", "leading space", "trailing space", "upper case"},
    ("apache", "apache_vhosts[].locations[].handler"): set(),
    ("apache", "apache_vhosts[].handlers{key}"): set(),
    ("apache", "apache_vhosts[].handlers{}[]"): {"upper case"},
    ("apache", "apache_vhosts[].tls.cert_file"): PRINTABLE - {"dollar brace", "dot dot", "leading hash", "leading space"},
    ("apache", "apache_vhosts[].tls.key_file"): PRINTABLE - {"dollar brace", "dot dot", "leading hash", "leading space"},
    ("apache", "apache_vhosts[].tls.chain_file"): PRINTABLE - {"dollar brace", "dot dot", "leading hash", "leading space"},
    ("fstab", "fstab_entries[].device"): PRINTABLE - {"leading hash", "leading space", "space", "tab"},
    ("fstab", "fstab_entries[].mount_point"): PRINTABLE - {"dot dot", "leading hash", "leading space"},
    ("fstab", "fstab_entries[].fstype"): set(),
    ("fstab", "fstab_entries[].options[]"): {
        "single quote",
        "hash",
        "leading hash",
        "dollar",
        "dollar brace",
        "open brace",
        "close brace",
        "braces",
        "colon",
        "semicolon",
        "equals",
        "angle brackets",
        "parentheses",
        "percent",
        "at",
        "pipe",
        "backquote",
        "dot dot",
        "upper case",
    },
    ("motd", "motd_message"): PRINTABLE,
    ("motd", "motd_contact"): {
        "single quote",
        "hash",
        "leading hash",
        "open brace",
        "close brace",
        "braces",
        "equals",
        "percent",
        "pipe",
        "backquote",
        "upper case",
    },
    ("motd", "motd_lines[]"): PRINTABLE,
    ("motd", "motd_template"): set(),
    ("postfix", "postfix_myhostname"): {"upper case"},
    ("postfix", "postfix_mydomain"): {"upper case"},
    ("postfix", "postfix_myorigin"): {"upper case"},
    ("postfix", "postfix_mydestination[]"): {"dollar", "upper case"},
    ("postfix", "postfix_mynetworks[]"): {"upper case"},
    ("postfix", "postfix_inet_interfaces[]"): {"upper case"},  # an address[:port] type (issue 14): a colon only where it separates the port
    ("postfix", "postfix_relayhost"): {"colon", "upper case"},
    ("postfix", "postfix_compatibility_level"): {"upper case"},
    ("postfix", "postfix_maillog_file"): {"upper case"},
    ("postfix", "postfix_smtpd_banner"): PRINTABLE - {"close brace", "leading space", "open brace", "trailing space"},
    ("postfix", "postfix_smtpd_timeout"): set(),
    ("postfix", "postfix_maximal_queue_lifetime"): set(),
    ("postfix", "postfix_bounce_queue_lifetime"): set(),
    ("postfix", "postfix_queue_run_delay"): set(),
    ("postfix", "postfix_minimal_backoff_time"): set(),
    ("postfix", "postfix_maximal_backoff_time"): set(),
    ("postfix", "postfix_main{key}"): {"upper case"},
    ("postfix", "postfix_main{}"): PRINTABLE - {"close brace", "leading space", "open brace", "trailing space"},
    ("postfix", "postfix_transports[].name"): set(),
    ("postfix", "postfix_transports[].bind_address"): {"upper case"},
    ("postfix", "postfix_transports[].helo_name"): {"upper case"},
    ("postfix", "postfix_transports[].options{key}"): {"upper case"},
    ("postfix", "postfix_transports[].options{}"): PRINTABLE - {"close brace", "leading space", "open brace", "trailing space"},
    ("postfix", "postfix_sender_transports{key}"): PRINTABLE - {"leading hash", "leading space", "space", "tab", "trailing space"},
    ("postfix", "postfix_sender_transports{}"): set(),
    ("postfix", "postfix_aliases{key}"): {"upper case"},
    ("postfix", "postfix_aliases{}"): {"equals", "at", "upper case"},
    ("postfix", "postfix_access.client{key}"): PRINTABLE - {"leading hash", "leading space", "space", "tab", "trailing space"},
    ("postfix", "postfix_access.client{}"): PRINTABLE - {"leading space", "trailing space"},
    ("postfix", "postfix_access.sender{key}"): PRINTABLE - {"leading hash", "leading space", "space", "tab", "trailing space"},
    ("postfix", "postfix_access.sender{}"): PRINTABLE - {"leading space", "trailing space"},
    ("postfix", "postfix_access.recipient{key}"): PRINTABLE - {"leading hash", "leading space", "space", "tab", "trailing space"},
    ("postfix", "postfix_access.recipient{}"): PRINTABLE - {"leading space", "trailing space"},
    ("postfix", "postfix_tls.cert_file"): POSTFIX_FILE,
    ("postfix", "postfix_tls.key_file"): POSTFIX_FILE,
    ("postfix", "postfix_tls.protocols"): {"space", "comma", "equals", "angle brackets", "upper case"},
    ("postfix", "postfix_instances[].name"): set(),
    ("postfix", "postfix_instances[].group"): set(),
    ("postfix", "postfix_instances[].inet_interfaces[]"): {
        "upper case"
    },  # an address[:port] type (issue 14): a colon only where it separates the port
    ("postfix", "postfix_instances[].myhostname"): {"upper case"},
    ("postfix", "postfix_instances[].main{key}"): {"upper case"},
    ("postfix", "postfix_instances[].main{}"): PRINTABLE - {"close brace", "leading space", "open brace", "trailing space"},
    ("postfix", "postfix_instances[].transports[].name"): set(),
    ("postfix", "postfix_instances[].transports[].bind_address"): {"upper case"},
    ("postfix", "postfix_instances[].transports[].helo_name"): {"upper case"},
    ("postfix", "postfix_instances[].transports[].options{key}"): {"upper case"},
    ("postfix", "postfix_instances[].transports[].options{}"): PRINTABLE - {"close brace", "leading space", "open brace", "trailing space"},
    ("postfix", "postfix_instances[].sender_transports{key}"): PRINTABLE
    - {"leading hash", "leading space", "space", "tab", "trailing space"},
    ("postfix", "postfix_instances[].sender_transports{}"): set(),
    ("postfix", "postfix_transports[].warmup.start"): {"upper case"},
    ("postfix", "postfix_warmup_date"): {"upper case"},
    ("postfix", "postfix_instances[].transports[].warmup.start"): {"upper case"},
    ("python_mta", "python_mta_dns_server"): {"upper case"},
    ("addresses", "addresses_extra[].address"): {"upper case"},
    ("addresses", "addresses_extra[].interface"): {"upper case"},
    ("addresses", "addresses_interface"): {"upper case"},
    ("dkim", "dkim_keys[].domain"): {"upper case"},
    ("dkim", "dkim_keys[].selector"): {"upper case"},
    ("dkim", "dkim_address"): {"upper case"},
    ("dkim", "dkim_internal_hosts[]"): {"upper case"},
    ("dkim", "dkim_records_dir"): PRINTABLE - {"dot dot", "leading hash", "leading space"},
    ("sshd", "sshd_allow_groups[]"): {"upper case"},
    ("sshd", "sshd_banner_text"): PRINTABLE,
}


@pytest.mark.parametrize(("role", "path"), all_paths(), ids=[f"{r}:{p}" for r, p in all_paths()])
def test_each_string_variable_is_refused_or_accepted_as_listed(tmp_path: Path, role: str, path: str) -> None:
    assert (role, path) in ACCEPTED, f"{role}: {path} is a new string variable: list what it accepts in ACCEPTED, and test it in the lab"
    results = compile_variants(tmp_path, role, {name: put(BASE[role], path, make)[0] for name, make in SPECIAL.items()})
    accepted = set()
    for name, result in results.items():
        if isinstance(result, TemplateError):
            # A filter refused it while rendering: the template is named.
            assert "template" in result.message, f"{name}: {result.message}"
        elif isinstance(result, ProvisionError):
            top = path.split(".")[0].split("[")[0].split("{")[0]
            assert f"variable {top}" in result.message, f"{name}: {result.message}"
            assert result.location is not None and result.location.file.endswith(".example.net.yml"), f"{name}: {result}"
        else:
            accepted.add(name)
    assert accepted == ACCEPTED[(role, path)]


def test_base_configurations_compile(tmp_path: Path) -> None:
    for role, values in BASE.items():
        (result,) = compile_variants(tmp_path / role, role, {"base": values}).values()
        assert isinstance(result, dict), result
