"""Values with the characters each format treats specially, read back by the
real service on a real host: what Apache, Postfix, sshd, libmount,
provision-mta, opendkim (signing real mail), ifupdown and `ip` parse is
exactly what the inventory says.

tests/test_config_values.py proves that every other special character is
refused before anything is pushed; here the ones that are accepted are shown
to keep their meaning (quotes, spaces, >, backslashes, #, $, { }, commas).
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import smtplib
import socket
import ssl
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import dkim
import dns.name
import dns.rdatatype
import dns.zone
import paramiko
import pytest
import yaml

from provision.lab.lab import Lab
from provision_mta.nameserver import resolver_for
from tests.support.dns_server import DnsServer
from tests.support.lab import converged, module_lab, run_roles
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.lab

values_lab = module_lab("values", 2)
HOST, MTA_HOST = "values-1", "values-2"

ROOT_DIR = '/srv/www/q "x" y>z\\w'
PRIVATE = f"{ROOT_DIR}/private dir"
LOCATION = "/lo'c>x#1"
CERT = '/etc/ssl/certs/web "1" x.pem'
KEY = '/etc/ssl/private/web "1" x.key'
ACCESS_LOG = '/var/log/apache2/acc "ess" log\\'
ADMIN = "o'brien#1@example.net"
CGI = '#!/bin/sh\nprintf \'Content-Type: text/plain\\n\\n\'\necho executed\necho "$SERVER_ADMIN"\necho "$DOCUMENT_ROOT"\n'


def sh(lab: Lab, command: str, host: str = HOST) -> str:
    code, output = lab.exec(host, ["sh", "-c", command])
    assert code == 0, f"{command}: {output}"
    return output


def get(lab: Lab, path: str, name: str = "www.example.net") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(lab.host(HOST).address, 80, timeout=30)
    try:
        connection.request("GET", urllib.parse.quote(path), headers={"Host": name})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def apache_vars(lab: Lab, **changes: Any) -> dict[str, Any]:
    address = lab.host(HOST).address
    values: dict[str, Any] = {
        "ssl_certificates": [{"name": "web", "common_name": "www.example.net", "mode": "self_signed", "cert_path": CERT, "key_path": KEY}],
        "apache_listen": [f"{address}:80", f"{address}:443"],
        "apache_server_admin": ADMIN,
        "apache_access_log": {"path": ACCESS_LOG},
        "apache_vhosts": [
            {
                "server_name": "www.example.net",
                "aliases": ["Alias.Example.NET"],
                "document_root": ROOT_DIR,
                "handlers": {"cgi-script": [".cgi", "pl"]},
                "directories": [{"path": ROOT_DIR, "options": ["+ExecCGI"]}, {"path": PRIVATE, "require": "all denied"}],
                "locations": [{"path": LOCATION, "require": "all denied"}],
            },
            {"server_name": "other.example.net", "document_root": "/srv/www/other"},
            {"server_name": "www.example.net", "listen": "*:443", "document_root": ROOT_DIR, "tls": {"cert_file": CERT, "key_file": KEY}},
        ],
    }
    values.update(changes)
    return values


def served_certificate_name(lab: Lab) -> str:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection((lab.host(HOST).address, 443), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="www.example.net") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return str(x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_apache_reads_quoted_paths_handlers_and_names_as_written(values_lab: Lab, tmp_path: Path) -> None:
    converged(run_roles(values_lab, tmp_path, ["ssl", "apache"], {HOST: apache_vars(values_lab)}, limit=HOST), HOST)
    setup = 'printf "%s" "$1" > "$0/t.cgi" && cp "$0/t.cgi" "$0/t.pl" && chmod +x "$0/t.cgi" "$0/t.pl" && echo hello > "$0/t.txt"'
    assert values_lab.exec(HOST, ["sh", "-c", setup, ROOT_DIR, CGI])[0] == 0
    assert values_lab.exec(HOST, ["sh", "-c", 'mkdir -p "$0" && echo secret > "$0/f.txt"', PRIVATE])[0] == 0

    # Parsed by Apache: names (two vhosts on *:80, so -S lists every alias) and the handler's module.
    vhosts = sh(values_lab, "apache2ctl -S 2>&1")
    assert "namevhost www.example.net" in vhosts and "alias Alias.Example.NET" in vhosts and "namevhost other.example.net" in vhosts
    assert "cgid_module" in sh(values_lab, "apache2ctl -M 2>&1")
    # The CGI script runs (it is not served as its source); Apache hands it ServerAdmin and DocumentRoot as written.
    for script in ("/t.cgi", "/t.pl"):
        status, body = get(values_lab, script, "alias.example.net")
        assert (status, body.decode().splitlines()) == (200, ["executed", ADMIN, ROOT_DIR])
    assert get(values_lab, "/t.txt") == (200, b"hello\n")
    # <Directory> with a space and <Location> with ' > # apply to exactly those paths.
    assert get(values_lab, "/private dir/f.txt")[0] == 403
    assert get(values_lab, LOCATION)[0] == 403 and get(values_lab, "/lo'c")[0] == 404
    # The access log went to the file whose name holds quotes, a space and a backslash.
    assert "GET /t.txt" in sh(values_lab, "cat '/var/log/apache2/acc \"ess\" log\\'")
    # The TLS vhost reads the ssl role's certificate through a path with quotes and spaces.
    assert served_certificate_name(values_lab) == "www.example.net"


def test_apache_refuses_the_handler_that_served_scripts_as_source(values_lab: Lab, tmp_path: Path) -> None:
    converged(run_roles(values_lab, tmp_path, ["ssl", "apache"], {HOST: apache_vars(values_lab)}, limit=HOST), HOST)
    before = sh(values_lab, "sha256sum /etc/apache2/provision/vhosts.conf /etc/apache2/provision/modules.conf")
    for handlers in ({'cgi script"': [".cgi"]}, {"cgi-script": [".p l"]}, {"cgi_script": [".cgi"]}):
        bad = apache_vars(values_lab)
        bad["apache_vhosts"][0]["handlers"] = handlers
        done = run_roles(values_lab, tmp_path, ["ssl", "apache"], {HOST: bad}, limit=HOST)
        assert done.returncode == 1 and "apache_vhosts" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert sh(values_lab, "sha256sum /etc/apache2/provision/vhosts.conf /etc/apache2/provision/modules.conf") == before
    status, body = get(values_lab, "/t.cgi")
    assert status == 200 and body.startswith(b"executed")


POSTFIX_OPTIONS = {
    "smtp_tls_policy_maps": "inline:{ {a.test = encrypt}, {b.test = may} }",
    "smtp_helo_timeout": "$smtp_connect_timeout",
    "smtp_tls_mandatory_exclude_ciphers": "aNULL,#x",
    "smtp_tls_note_starttls_offer": True,
    "smtp_address_preference": ["ipv4"],
}
BANNER = '$myhostname ESMTP "quoted" #not-a-comment \\back {x} = ok'
ALIASES = {
    "root": ["admin", "|/usr/bin/logger -t provision-test", "/var/mail/archive", ":include:/etc/postfix/team"],
    "admin": "ops@example.net",
    "No.Reply+x": "root",
}
ACCESS = {'"odd"key@example.com': 'REJECT "no" #1 \\x', "a#b@example.com": "DUNNO", "@Spam.Example": "REJECT go away"}


def test_postfix_reads_options_values_aliases_and_tables_as_written(values_lab: Lab, tmp_path: Path) -> None:
    host = values_lab.host(HOST)
    first, second, third = host.extra_addresses[:3]
    variables = {
        "postfix_myhostname": "values-1.example.test",
        "postfix_inet_interfaces": [host.address],
        "postfix_maillog_file": "/var/log/postfix.log",
        "postfix_smtpd_banner": BANNER,
        "postfix_main": {"smtpd_client_restrictions": "check_client_access inline:{ {192.0.2.1 = REJECT go away} }"},
        "postfix_transports": [{"name": "out1", "bind_address": first, "helo_name": "out1.example.test", "options": POSTFIX_OPTIONS}],
        "postfix_transport_selection": "sender",
        "postfix_sender_transports": {"@News.Example.NET": "out1"},
        "postfix_aliases": ALIASES,
        "postfix_access": {"sender": ACCESS},
        "postfix_instances": [
            {
                "name": "postfix-bulk",
                "inet_interfaces": [second],
                "transports": [{"name": "bulk1", "bind_address": third, "options": {"smtp_tls_policy_maps": "inline:{ {c.test = none} }"}}],
            }
        ],
    }
    converged(run_roles(values_lab, tmp_path, ["postfix"], {HOST: variables}, limit=HOST), HOST)

    overrides = sh(values_lab, "postconf -P")
    expected = {
        "smtp_tls_policy_maps": "inline:{ {a.test = encrypt}, {b.test = may} }",
        "smtp_helo_timeout": "$smtp_connect_timeout",
        "smtp_tls_mandatory_exclude_ciphers": "aNULL,#x",
        "smtp_tls_note_starttls_offer": "yes",
        "smtp_address_preference": "ipv4",
        "smtp_bind_address": first,
        "smtp_helo_name": "out1.example.test",
        "syslog_name": "postfix/out1",
    }
    found = {
        line.split(" = ", 1)[0].split("/", 2)[2]: line.split(" = ", 1)[1]
        for line in overrides.splitlines()
        if line.startswith("out1/unix/")
    }
    assert found == expected
    # The -o argument count is Postfix's own: one per setting, no stray "}" argument.
    (entry,) = [line for line in sh(values_lab, "postconf -M").splitlines() if line.startswith("out1 ")]
    assert entry.count(" -o ") == len(expected)
    bulk = sh(values_lab, "postmulti -i postfix-bulk -x postconf -P")
    assert "bulk1/unix/smtp_tls_policy_maps = inline:{ {c.test = none} }" in bulk
    assert sh(values_lab, "postconf -h smtpd_banner").strip() == BANNER
    assert sh(values_lab, "postconf -h smtpd_client_restrictions").strip() == "check_client_access inline:{ {192.0.2.1 = REJECT go away} }"
    assert "warning" not in sh(values_lab, "postconf -n 2>&1 >/dev/null; postfix check 2>&1")

    aliases = dict(line.split(":\t", 1) for line in sh(values_lab, "postalias -s hash:/etc/aliases").splitlines() if ":\t" in line)
    assert aliases["root"] == 'admin, "|/usr/bin/logger -t provision-test", "/var/mail/archive", ":include:/etc/postfix/team"'
    assert aliases["admin"] == "ops@example.net" and aliases["no.reply+x"] == "root"
    table = dict(line.split("\t", 1) for line in sh(values_lab, "postmap -s hash:/etc/postfix/access_sender").splitlines())
    assert table == {key.lower(): value for key, value in ACCESS.items()}
    assert sh(values_lab, "postmap -q @news.example.net hash:/etc/postfix/sender_transport").strip() == "out1:"


def test_postfix_refuses_a_brace_that_would_split_an_option(values_lab: Lab, tmp_path: Path) -> None:
    host = values_lab.host(HOST)
    variables = {
        "postfix_inet_interfaces": [host.address],
        "postfix_transports": [{"name": "out1", "bind_address": host.extra_addresses[0], "options": {"smtp_helo_name": "x }"}}],
    }
    before = sh(values_lab, "sha256sum /etc/postfix/master.cf")
    done = run_roles(values_lab, tmp_path, ["postfix"], {HOST: variables}, limit=HOST)
    assert done.returncode == 1 and "postfix_transports[0].options.smtp_helo_name" in done.stderr, done.stderr
    assert sh(values_lab, "sha256sum /etc/postfix/master.cf") == before


BANNER_TEXT = 'Authorised "use" only: #1 \\ $HOME %h {x} `id` <b>'


def test_sshd_sends_the_banner_as_written(values_lab: Lab, tmp_path: Path) -> None:
    converged(
        run_roles(values_lab, tmp_path, ["sshd"], {HOST: {"sshd_banner_text": BANNER_TEXT, "sshd_allow_groups": ["root"]}}, limit=HOST),
        HOST,
    )
    assert "banner /etc/ssh/provision-banner" in sh(values_lab, "/usr/sbin/sshd -T")
    host = values_lab.host(HOST)
    client = paramiko.SSHClient()
    client.load_host_keys(str(values_lab.known_hosts))
    try:
        client.connect(host.address, username="root", key_filename=str(values_lab.key_file), timeout=30, look_for_keys=False)
        transport = client.get_transport()
        assert transport is not None
        banner = transport.get_banner()
    finally:
        client.close()
    assert banner is not None and banner.decode() == BANNER_TEXT + "\n"


def test_motd_shows_the_text_as_written(values_lab: Lab, tmp_path: Path) -> None:
    lines = ["$(id) `id` $HOME", '"quoted" #hash \\back {x}']
    message = "Say 'hi' & \\ $USER %s"
    converged(run_roles(values_lab, tmp_path, ["motd"], {HOST: {"motd_message": message, "motd_lines": lines}}, limit=HOST), HOST)
    motd = sh(values_lab, "cat /etc/motd").splitlines()
    assert motd[:3] == [f"{HOST}: {message}", *lines]
    assert "Live addresses:" in sh(values_lab, "/etc/update-motd.d/50-provision")


MOUNT_POINT = '/mnt/we ird\\#"x"\ttab'
DEVICE = '/dev/fake "dev" #1\\x'


def test_fstab_entries_read_back_by_libmount(values_lab: Lab, tmp_path: Path) -> None:
    entry = {"device": DEVICE, "mount_point": MOUNT_POINT, "fstype": "tmpfs", "options": ["size=1m", "mode=0755"], "mount": True}
    converged(run_roles(values_lab, tmp_path, ["fstab"], {HOST: {"fstab_entries": [entry]}}, limit=HOST), HOST)
    listed = json.loads(sh(values_lab, "findmnt --tab-file /etc/fstab -J -o SOURCE,TARGET,FSTYPE,OPTIONS"))["filesystems"]
    assert {"source": DEVICE, "target": MOUNT_POINT, "fstype": "tmpfs", "options": "size=1m,mode=0755"} in listed
    code, output = values_lab.exec(HOST, ["findmnt", "-J", "-o", "SOURCE,TARGET", "--mountpoint", MOUNT_POINT])
    assert code == 0 and json.loads(output)["filesystems"] == [{"source": DEVICE, "target": MOUNT_POINT}], output
    absent = {**entry, "state": "absent"}
    converged(run_roles(values_lab, tmp_path, ["fstab"], {HOST: {"fstab_entries": [absent]}}, limit=HOST), HOST)
    # No entry left (findmnt finds nothing to list) and the tmpfs is unmounted.
    assert values_lab.exec(HOST, ["findmnt", "--tab-file", "/etc/fstab", "-o", "TARGET", "--target", MOUNT_POINT])[0] == 1
    assert values_lab.exec(HOST, ["mountpoint", "-q", MOUNT_POINT])[0] != 0


def test_provision_mta_reads_master_cf_as_postfix_does(values_lab: Lab, tmp_path: Path) -> None:
    host = values_lab.host(MTA_HOST)
    variables = {
        "postfix_myhostname": "values-2.example.test",
        "postfix_inet_interfaces": [host.address],
        "python_mta_port": 2525,
        "postfix_transports": [
            {"name": "out1", "bind_address": host.extra_addresses[0], "helo_name": "out1.example.test", "options": POSTFIX_OPTIONS}
        ],
    }
    converged(run_roles(values_lab, tmp_path, ["python_mta"], {MTA_HOST: variables}, limit=MTA_HOST), MTA_HOST)
    script = (
        "import json; from provision_mta.master_cf import smtp_transports, split_arguments;"
        "text = open('/etc/postfix/master.cf').read();"
        "print(json.dumps([smtp_transports(text)['out1'].__dict__, split_arguments(text.split('out1 ', 1)[1])]))"
    )
    code, output = values_lab.exec(MTA_HOST, ["/opt/provision-mta/bin/python3", "-c", script])
    assert code == 0, output
    transport, arguments = json.loads(output)
    assert transport == {"name": "out1", "bind_address": host.extra_addresses[0], "helo_name": "out1.example.test"}
    assert "smtp_tls_policy_maps = inline:{ {a.test = encrypt}, {b.test = may} }" in arguments
    assert arguments.count("-o") == 8


# DKIM, addresses and warm-up (issue 20's variables): this branch's loopback block is 127.89.0.0/16.
SINK_ADDRESS, SINK_PORT, DNS_ADDRESS = "127.89.0.25", 2525, "127.89.0.53"
DKIM_DOMAIN, SELECTOR = "Mixed.Example.TEST", "Sel-1"
# Clients of the signing test: two inside dkim_internal_hosts written in spellings opendkim's
# lookup never produces (host bits, a netmask), one outside.
CLIENT_HOST_BITS, CLIENT_NETMASK, CLIENT_OUTSIDE = "127.89.6.9", "127.89.7.9", "127.89.8.9"
INTERNAL_HOSTS = ["127.89.6.7/24", "127.89.7.0/255.255.255.0"]


def zone_txt(path: Path) -> tuple[str, str]:
    """(name, TXT value) of the one record of a zone file line, as dnspython's zone parser reads it."""
    zone = dns.zone.from_text(path.read_text(), origin=dns.name.root, relativize=False, check_origin=False)
    ((name, rdataset),) = [(n, r) for n, node in zone.nodes.items() for r in node.rdatasets if r.rdtype == dns.rdatatype.TXT]
    (rdata,) = list(rdataset)
    return name.to_text(omit_final_dot=True), b"".join(rdata.strings).decode()


def signatures(message: bytes) -> list[tuple[str, str, bool]]:
    """(d=, s=, verified) of each DKIM-Signature, checked with dkimpy against the lab's DNS server."""
    resolver = resolver_for([(DNS_ADDRESS, 53)])

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return b"".join(next(iter(resolver.resolve(name.decode().rstrip("."), "TXT"))).strings)

    checker = dkim.DKIM(message)
    found = []
    for index in range(message.count(b"DKIM-Signature:")):
        verified = checker.verify(idx=index, dnsfunc=lookup)
        found.append((checker.domain.decode(), checker.selector.decode(), bool(verified)))
    return found


def submit(lab: Lab, client: str, tag: str) -> None:
    """One message over SMTP from ``client`` (a source address of this machine's lo) to the lab host's Postfix."""
    text = f"From: news@mixed.example.test\r\nTo: r@sink.test\r\nSubject: {tag}\r\nMessage-ID: <{tag}@mixed.example.test>\r\n\r\nhello\r\n"
    with smtplib.SMTP(lab.host(HOST).address, 25, source_address=(client, 0), timeout=60) as smtp:
        smtp.sendmail("news@mixed.example.test", ["r@sink.test"], text)


def test_opendkim_signs_with_names_and_networks_as_written(values_lab: Lab, tmp_path: Path) -> None:
    host = values_lab.host(HOST)
    records = tmp_path / 'dkim "records" #1 $x\\'
    variables = {
        "postfix_myhostname": "values-1.example.test",
        "postfix_inet_interfaces": [host.address],
        "postfix_mynetworks": ["127.89.6.0/24", "127.89.7.0/24", "127.89.8.0/24"],
        "postfix_relayhost": f"[{SINK_ADDRESS}]:{SINK_PORT}",
        "postfix_maillog_file": "/var/log/postfix.log",
        "dkim_keys": [{"domain": DKIM_DOMAIN, "selector": SELECTOR}],
        # The lab host's own address: the milter shares no 127.0.0.1:8891 with other labs.
        "dkim_address": host.address,
        "dkim_internal_hosts": INTERNAL_HOSTS,
        "dkim_records_dir": str(records),
    }
    with SmtpSink(SINK_ADDRESS, SINK_PORT) as sink, DnsServer(DNS_ADDRESS, zones=("test",)) as dns_server:
        converged(run_roles(values_lab, tmp_path, ["dkim", "postfix"], {HOST: variables}, limit=HOST), HOST)
        # opendkim's own parse of the staged config and tables passed (the role's validator); it reads back:
        assert sh(values_lab, "opendkim -n -x /etc/opendkim-rsa.conf 2>&1; echo $?").strip() == "0"
        assert sh(values_lab, "grep -v '^#' /etc/opendkim/TrustedHosts").split() == ["127.89.6.0/24", "127.89.7.0/24"]
        # The record file in a folder whose name holds quotes, # and $ is a zone line dnspython reads.
        name, value = zone_txt(records / HOST / f"{SELECTOR}._domainkey.{DKIM_DOMAIN}.txt")
        assert name == f"{SELECTOR}._domainkey.{DKIM_DOMAIN}" and value.startswith("v=DKIM1; k=rsa; p=")
        dns_server.serve({}, {}, txt={name.lower(): value})

        tag = uuid.uuid4().hex[:8]
        for client in (CLIENT_HOST_BITS, CLIENT_NETMASK, CLIENT_OUTSIDE):
            submit(values_lab, client, f"{tag} {client}")
        deadline = time.monotonic() + 120
        while len([m for m in sink.messages if m.subject.startswith(tag)]) < 3 and time.monotonic() < deadline:
            time.sleep(0.3)
        by_client = {m.subject.split()[1]: m for m in sink.messages if m.subject.startswith(tag)}
        assert len(by_client) == 3, sh(values_lab, "tail -n 30 /var/log/postfix.log")
        # Signed for the lower-case From: domain (SigningTable patterns are case-insensitive), with the
        # domain and selector as written, verified against the record the controller wrote.
        for client in (CLIENT_HOST_BITS, CLIENT_NETMASK):
            assert signatures(by_client[client].content) == [(DKIM_DOMAIN, SELECTOR, True)], client
    # A client outside dkim_internal_hosts is not signed: the networks are what opendkim matches on.
    assert b"DKIM-Signature:" not in by_client[CLIENT_OUTSIDE].content


ROLE_ADDRESSES = ["127.89.3.1", "127.89.3.2"]


def ifquery(lab: Lab, interface: str) -> list[str]:
    """ifupdown's own reading of the file the role wrote: the addresses (ADDRESS/PREFIX) its stanzas give ``interface``.

    ifupdown is unpacked, not installed (its postinst would start networking in the machine's
    network namespace, which the lab hosts share)."""
    unpack = (
        "test -x /tmp/ifupdown/sbin/ifquery || (cd /tmp && apt-get download -q ifupdown >/dev/null && dpkg -x ifupdown_*.deb /tmp/ifupdown)"
    )
    sh(lab, unpack)
    output = sh(lab, f"/tmp/ifupdown/sbin/ifquery -i /etc/network/interfaces.d/provision-addresses {interface}")
    lines = [line.split(": ", 1) for line in output.splitlines() if ": " in line]
    netmasks = [value for key, value in lines if key == "netmask"]
    return [
        f"{value}/{ipaddress.ip_network(f'0.0.0.0/{mask}').prefixlen}"
        for (key, value) in lines
        if key == "address"
        for mask in [netmasks.pop(0)]
    ]


def lo_addresses(lab: Lab) -> set[str]:
    """The 127.89.3.x addresses `ip -o addr` shows on lo."""
    return {f.split()[3] for f in sh(lab, "ip -o -4 addr show dev lo").splitlines() if " 127.89.3." in f}


def test_addresses_are_configured_on_the_interface_as_written(values_lab: Lab, tmp_path: Path) -> None:
    entries = [{"address": ROLE_ADDRESSES[0]}, {"address": ROLE_ADDRESSES[1], "prefix": 32, "interface": "lo"}]
    try:
        converged(run_roles(values_lab, tmp_path, ["addresses"], {HOST: {"addresses_interface": "lo", "addresses_extra": entries}}), HOST)
        assert lo_addresses(values_lab) == {f"{a}/32" for a in ROLE_ADDRESSES}
        assert ifquery(values_lab, "lo") == [f"{a}/32" for a in ROLE_ADDRESSES]
        before = sh(values_lab, "sha256sum /etc/network/interfaces.d/provision-addresses")

        # An alias label (ifupdown's eth0:1, no device for `ip addr add ... dev`) is refused before anything is pushed.
        alias = [*entries, {"address": "127.89.3.3", "interface": "lo:1"}]
        done = run_roles(values_lab, tmp_path, ["addresses"], {HOST: {"addresses_interface": "lo", "addresses_extra": alias}})
        assert done.returncode == 1 and "addresses_extra[2].interface" in done.stderr and "Traceback" not in done.stderr, done.stderr
        # Interface names are case-sensitive and reach `ip` as written: LO is no device, the handler
        # fails and the previous file comes back.
        upper = run_roles(values_lab, tmp_path, ["addresses"], {HOST: {"addresses_interface": "LO", "addresses_extra": entries[:1]}})
        assert upper.returncode == 1, upper.stdout + upper.stderr
        (error,) = json.loads(upper.stdout)["hosts"][HOST]["errors"]
        assert 'ip addr add 127.89.3.1/32 dev LO: Cannot find device "LO"' in error and "previous files restored" in error
        assert sh(values_lab, "sha256sum /etc/network/interfaces.d/provision-addresses") == before
        assert lo_addresses(values_lab) == {f"{a}/32" for a in ROLE_ADDRESSES}

        converged(run_roles(values_lab, tmp_path, ["addresses"], {HOST: {"addresses_interface": "lo", "addresses_extra": []}}), HOST)
        assert lo_addresses(values_lab) == set()
    finally:
        for address in [*ROLE_ADDRESSES, "127.89.3.3"]:
            subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True, check=False)


def test_warmup_dates_reach_postfix_as_that_day_s_step(values_lab: Lab, tmp_path: Path) -> None:
    host = values_lab.host(HOST)
    first, second, third = host.extra_addresses[:3]
    variables = {
        "postfix_myhostname": "values-1.example.test",
        "postfix_inet_interfaces": [host.address],
        # A YAML date (unquoted in host_vars) and quoted text are one date.
        "postfix_transports": [{"name": "out1", "bind_address": first, "warmup": {"start": dt.date(2026, 12, 1)}}],
        "postfix_warmup_date": "2026-12-03",
        "postfix_instances": [
            {
                "name": "postfix-warm",
                "inet_interfaces": [second],
                "transports": [{"name": "bulk1", "bind_address": third, "warmup": {"start": "2026-12-02"}}],
            }
        ],
    }
    assert "start: 2026-12-01\n" in yaml.safe_dump(variables)
    converged(run_roles(values_lab, tmp_path, ["postfix"], {HOST: variables}, limit=HOST), HOST)
    # Day 3 of the default curve: 150 messages a day per domain, one every ceil(86400/150) s; day 2: 100, 864 s.
    assert sh(values_lab, "postconf -h out1_destination_rate_delay").strip() == "576s"
    assert sh(values_lab, "postmulti -i postfix-warm -x postconf -h bulk1_destination_rate_delay").strip() == "864s"
    assert "out1: day 3 of 28: 5% of its full weight, 150 messages a day per receiving domain" in sh(
        values_lab, "cat /etc/postfix/provision-warmup"
    )
    assert "bulk1: day 2 of 28" in sh(values_lab, "cat /etc/postfix-warm/provision-warmup")
    assert "warning" not in sh(values_lab, "postfix check 2>&1; postmulti -i postfix-warm -x postfix check 2>&1")
