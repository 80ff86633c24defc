"""A lab of Debian hosts: containers on the host network, one loopback
address each, sshd on port 22 of that address, keys made per lab.

State lives in ``lab/<name>/`` of provision's state folder
(``provision.statedir``: ``~/.local/state/provision``, or
``PROVISION_LAB_DIR`` instead of ``.../lab``), so that ``lab status``,
``lab inventory`` and ``lab down`` find a lab from any folder: the lab's SSH
key pair, its own known_hosts (host keys read from each container out of
band, so SSH verifies them for real), and an inventory for ``provision apply``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provision.lab.docker import LabError, docker_client, docker_errors
from provision.lab.image import DEFAULT_SUITE, SUITES, build_image, check_suite
from provision.statedir import private_dir, state_dir

LABEL = "provision.lab"
SSH_WAIT_SECONDS = 60.0
EXTRA_ADDRESSES = 3
ENTRYPOINT = """set -e
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
printf '%s\\n' "$LAB_AUTHORIZED_KEY" > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
ssh-keygen -A >/dev/null
exec /usr/sbin/sshd -D -e -o ListenAddress="$LAB_ADDRESS" -o PidFile=/run/sshd.pid -o UseDNS=no -o LogLevel="$LAB_SSHD_LOG_LEVEL"
"""


@dataclass
class LabHost:
    name: str
    address: str
    container: str
    extra_addresses: list[str] = field(default_factory=list)
    """More loopback addresses of this host (outgoing IPs of Postfix transports)."""
    suite: str = DEFAULT_SUITE
    """The Debian release its image was built from (a lab from before suites were bookworm)."""


Suites = str | Sequence[str] | Mapping[str, str] | None
"""What ``Lab.up`` accepts: one suite for every host, one per host in order, or host -> suite."""


def assign_suites(names: list[str], suites: Suites) -> dict[str, str]:
    """Each host's suite: ``None`` is bookworm for all; one suite is for all;
    a list gives one per host in order (a list of one is for all); a mapping
    names hosts (the others get bookworm). Unknown suites or hosts are refused."""
    if suites is None:
        return dict.fromkeys(names, DEFAULT_SUITE)
    if isinstance(suites, str):
        return dict.fromkeys(names, check_suite(suites))
    if isinstance(suites, Mapping):
        unknown = sorted(set(suites) - set(names))
        if unknown:
            raise LabError(f"--suite names host(s) not in the lab: {', '.join(unknown)} (hosts: {', '.join(names)})")
        return {name: check_suite(suites.get(name, DEFAULT_SUITE)) for name in names}
    listed = [check_suite(suite) for suite in suites]
    if len(listed) == 1:
        return dict.fromkeys(names, listed[0])
    if len(listed) != len(names):
        raise LabError(f"{len(listed)} suites ({', '.join(listed)}) for {len(names)} hosts: give one suite, or one per host")
    return dict(zip(names, listed, strict=True))


def parse_suite_options(values: Sequence[str], names: list[str]) -> dict[str, str]:
    """``--suite`` as given on the command line, repeatable: ``trixie`` (every
    host), ``bullseye,bookworm,trixie`` (one per host in order) or
    ``HOST=SUITE`` (that host; these win over the others)."""
    listed: list[str] = []
    per_host: dict[str, str] = {}
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            host, sep, suite = item.rpartition("=")
            if sep:
                per_host[host] = suite
            else:
                listed.append(suite)
    chosen = assign_suites(names, listed or None)
    assign_suites(names, per_host)  # refuses unknown hosts and suites
    return {name: per_host.get(name, chosen[name]) for name in names}


def lab_root() -> Path:
    override = os.environ.get("PROVISION_LAB_DIR")
    return Path(override).expanduser().resolve() if override else state_dir() / "lab"


def address_block(name: str) -> str:
    """127.S.T: a /24 inside 127.0.0.0/8 chosen from the lab's name; the
    next few /24s (T+1...) hold the hosts' extra addresses."""
    digest = zlib.crc32(name.encode())
    return f"127.{100 + digest % 100}.{(digest // 100 % 50) * 5 + 1}"


class Lab:
    def __init__(self, name: str = "lab", root: Path | None = None, namespace: str | None = None, sshd_log_level: str = "INFO") -> None:
        """``namespace`` (default: $PROVISION_LAB_NAMESPACE, else provision-lab)
        prefixes container names and seeds the addresses, so that the test
        suite's labs never collide with a developer's. The benchmarks set
        ``sshd_log_level`` to DEBUG1 to count SSH commands."""
        self.name = name
        self.sshd_log_level = sshd_log_level
        self.namespace = namespace or os.environ.get("PROVISION_LAB_NAMESPACE") or "provision-lab"
        self.directory = (root or lab_root()) / name
        self._client: Any = None

    # --- files --------------------------------------------------------
    @property
    def key_file(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def inventory_file(self) -> Path:
        return self.directory / "hosts.yml"

    @property
    def state_file(self) -> Path:
        return self.directory / "lab.json"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def hosts(self) -> list[LabHost]:
        if not self.state_file.exists():
            return []
        return [LabHost(**entry) for entry in json.loads(self.state_file.read_text())["hosts"]]

    def host(self, name: str) -> LabHost:
        for entry in self.hosts():
            if name in (entry.name, entry.address, entry.container):
                return entry
        raise LabError(f"no host {name!r} in lab {self.name!r} (hosts: {', '.join(h.name for h in self.hosts()) or 'none'})")

    # --- up / down ----------------------------------------------------
    def up(self, count: int = 0, say: Any = print, names: list[str] | None = None, suites: Suites = None) -> list[LabHost]:
        """Start ``count`` hosts named NAME-1..N, or one host per name in
        ``names``, each from its suite's image (see ``assign_suites``)."""
        if os.geteuid() != 0:
            raise LabError("the lab adds loopback addresses with 'ip addr add' and must run as root")
        names = names or [f"{self.name}-{i}" for i in range(1, count + 1)]
        if not names or len(names) > 250:
            raise LabError(f"a lab holds 1 to 250 hosts, not {len(names)}")
        chosen = assign_suites(names, suites)
        images = {suite: build_image(self.client, say, suite) for suite in SUITES if suite in chosen.values()}
        private_dir(self.directory)
        public_key = self._ensure_key()
        block = address_block(f"{self.namespace}/{self.name}")
        prefix, third = block.rsplit(".", 1)
        hosts = [
            LabHost(
                host,
                f"{block}.{i}",
                f"{self.namespace}-{self.name}-{i}",
                [f"{prefix}.{int(third) + k}.{i}" for k in range(1, EXTRA_ADDRESSES + 1)],
                chosen[host],
            )
            for i, host in enumerate(names, start=1)
        ]
        # The state first: a lab whose up fails half way (a container that does not start, an sshd
        # that never answers) is still known to `lab down`, which then takes its addresses off lo.
        self.state_file.write_text(json.dumps({"name": self.name, "hosts": [asdict(h) for h in hosts]}, indent=2))
        for host in hosts:
            for address in [host.address, *host.extra_addresses]:
                add_loopback_address(address)
            self._start_container(images[host.suite], host, public_key)
        for host in hosts:
            wait_for_ssh(host.address, SSH_WAIT_SECONDS)
        self._record_host_keys(hosts)
        self.inventory_file.write_text(self.inventory_text(hosts))
        return hosts

    def down(self) -> list[str]:
        """Remove the containers, loopback addresses and state of the lab; say what went.

        The key pair stays, so that a lab started again under the same name
        keeps the key an operator may have copied elsewhere."""
        NotFound = docker_errors().NotFound

        removed: list[str] = []
        for container in self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.namespace}/{self.name}"}):
            container.remove(force=True)
            removed.append(f"container {container.name}")
        for host in self.hosts():
            with contextlib.suppress(NotFound):
                self.client.containers.get(host.container).remove(force=True)
                removed.append(f"container {host.container}")
        for host in self.hosts():
            for address in [host.address, *host.extra_addresses]:
                if remove_loopback_address(address):
                    removed.append(f"address {address}/32 from lo")
        for path in (self.state_file, self.inventory_file, self.known_hosts):
            if path.exists():
                path.unlink()
                removed.append(f"file {path}")
        return removed

    def stop(self, name: str) -> None:
        """Stop one host's container (it keeps its disk); for failure tests."""
        self.client.containers.get(self.host(name).container).stop(timeout=5)

    def start(self, name: str) -> None:
        host = self.host(name)
        self.client.containers.get(host.container).start()
        wait_for_ssh(host.address, SSH_WAIT_SECONDS)

    def status(self) -> list[dict[str, str]]:
        """Each host's address, container state, release and SSH banner. The
        release is read from the running host (so an upgraded host shows its
        new one); a stopped host shows the suite it was built from."""
        NotFound = docker_errors().NotFound

        client = self.client  # no engine: a clear LabError, not "missing" rows
        rows = []
        for host in self.hosts():
            try:
                container = client.containers.get(host.container)
                state = container.status
            except NotFound:
                container, state = None, "missing"
            release = running_release(container) if state == "running" else None
            rows.append(
                {
                    "host": host.name,
                    "address": host.address,
                    "container": state,
                    "suite": host.suite,
                    "release": release or f"{host.suite} (image)",
                    "ssh": ssh_banner(host.address) or "-",
                }
            )
        return rows

    def exec(self, name: str, command: list[str]) -> tuple[int, str]:
        host = self.host(name)
        result = self.client.containers.get(host.container).exec_run(command, demux=False)
        return int(result.exit_code), (result.output or b"").decode("utf-8", "replace")

    # --- pieces -------------------------------------------------------
    def _ensure_key(self) -> str:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not self.key_file.exists():
            key = Ed25519PrivateKey.generate()
            private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
            descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(private)
            public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            self.key_file.with_suffix(".pub").write_bytes(public + b" provision-lab\n")
        return self.key_file.with_suffix(".pub").read_text().strip()

    def _start_container(self, image: str, host: LabHost, public_key: str) -> None:
        NotFound = docker_errors().NotFound

        with contextlib.suppress(NotFound):
            self.client.containers.get(host.container).remove(force=True)
        self.client.containers.run(
            image,
            ["/bin/sh", "-c", ENTRYPOINT],
            name=host.container,
            hostname=host.name.split(".")[0],
            network_mode="host",
            detach=True,
            labels={LABEL: f"{self.namespace}/{self.name}"},
            environment={"LAB_AUTHORIZED_KEY": public_key, "LAB_ADDRESS": host.address, "LAB_SSHD_LOG_LEVEL": self.sshd_log_level},
            # CAP_SYS_ADMIN lets the fstab role mount inside the host's own mount namespace;
            # CAP_NET_ADMIN lets the addresses role run `ip addr add` (on the shared lo).
            cap_add=["SYS_ADMIN", "NET_ADMIN"],
        )

    def host_keys(self, host: LabHost) -> list[str]:
        code, output = self.exec(host.name, ["sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"])
        if code != 0:
            raise LabError(f"cannot read the host keys of {host.name}: {output.strip()}")
        return [" ".join(line.split()[:2]) for line in output.splitlines() if line.strip()]

    def _record_host_keys(self, hosts: list[LabHost]) -> None:
        lines = [f"{host.address} {key}" for host in hosts for key in self.host_keys(host)]
        self.known_hosts.write_text("\n".join(lines) + "\n")

    def inventory_text(self, hosts: list[LabHost]) -> str:
        lines = [
            f"# Lab {self.name!r}, written by 'provision lab up'. Use it beside another",
            "# inventory: provision apply -i inventories/example -i " + str(self.inventory_file),
            "#",
            "# host: the address sshd of the host listens on (127.x.y.z, on this machine's lo).",
            f"# lab_addresses: {EXTRA_ADDRESSES} more loopback addresses that belong to the host alone (added",
            "#   to lo by 'lab up', removed by 'lab down'), for services to bind or listen on. Postfix",
            "#   transports bound to them, one per address:",
            "#     postfix_transports:",
            '#       - {name: out1, bind_address: "{{ lab_addresses[0] }}"}',
            '#       - {name: out2, bind_address: "{{ lab_addresses[1] }}"}',
            "all:",
            "  vars:",
            "    user: root",
            f"    ssh_key: {self.key_file}",
            f"    known_hosts: {self.known_hosts}",
            "  hosts:",
        ]
        lines += [f"    {h.name}:\n      host: {h.address}\n      lab_addresses: [{', '.join(h.extra_addresses)}]" for h in hosts]
        return "\n".join(lines) + "\n"


RELEASE_COMMAND = '. /etc/os-release && printf "%s %s\\n" "${VERSION_CODENAME:-?}" "$(cat /etc/debian_version)"'


def on_loopback(address: str) -> bool:
    """Whether lo already holds ADDRESS/32."""
    shown = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo", "to", f"{address}/32"], capture_output=True, text=True, check=False)
    return shown.returncode == 0 and bool(shown.stdout.strip())


def add_loopback_address(address: str) -> bool:
    """Put ADDRESS/32 on lo; whether this call added it. An address already there
    is fine (a lab brought up again), and its owner, not this caller, removes it."""
    # Asked first rather than read from `ip addr add`'s error: its wording for "already there"
    # changed with the kernel ("File exists" before, "Address already assigned" on 6.x), and a
    # matrix run there failed on an address an earlier run of the same lab had left on lo.
    if on_loopback(address):
        return False
    done = subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return True
    if on_loopback(address):
        return False  # another process added it meanwhile
    raise LabError(f"cannot add {address} to lo: {done.stderr.strip()}")


def remove_loopback_address(address: str) -> bool:
    """Take ADDRESS/32 off lo; whether it was there."""
    done = subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True, check=False)
    return done.returncode == 0


def running_release(container: Any) -> str | None:
    """``bullseye 11.11``: the codename and point release a running host has."""
    result = container.exec_run(["sh", "-c", RELEASE_COMMAND])
    text = (result.output or b"").decode("utf-8", "replace").strip()
    return text if result.exit_code == 0 and text else None


def ssh_banner(address: str, port: int = 22, timeout: float = 2.0) -> str | None:
    try:
        with socket.create_connection((address, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            banner = connection.recv(256).decode("ascii", "replace").strip()
    except OSError:
        return None
    return banner if banner.startswith("SSH-") else None


def wait_for_ssh(address: str, timeout: float) -> None:
    """Wait until sshd on ``address`` sends its banner, or fail clearly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ssh_banner(address, timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
            return
        time.sleep(0.2)  # polling interval while sshd starts, bounded by the deadline
    raise LabError(f"sshd on {address}:22 did not answer within {timeout:g}s")
