"""A real Postfix (Debian's package, installed by scripts/test.sh without a
configuration of its own), run as the reference the built-in MTA's
adversarial tests compare against: same main.cf settings, same bytes sent.

Each instance has its own config folder, queue, data folder and log file
in a folder of its own (its processes run as the postfix user, which cannot
enter pytest's 0700 temporary folders), listens only on its own loopback address
and port (never 127.0.0.1:25), runs nothing chrooted and is stopped with the
test. Postfix refuses an address that no interface carries, so the address is
added to ``lo`` while it runs.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.lab.lab import add_loopback_address, remove_loopback_address

# master.cf services the tests need; pipe transports to programs the machine lacks are left out.
_SERVICES = {
    "pickup", "cleanup", "qmgr", "tlsmgr", "rewrite", "bounce", "defer", "trace", "verify", "flush", "proxymap", "proxywrite",
    "smtp", "relay", "showq", "error", "retry", "discard", "local", "virtual", "anvil", "scache", "postlog",
}  # fmt: skip


def available() -> bool:
    return shutil.which("postfix") is not None and Path("/etc/postfix/master.cf").exists()


def _master_cf(address: str, port: int) -> str:
    """Debian's master.cf with only the services above, none chrooted, smtpd on ``address:port``."""
    lines = [f"{address}:{port} inet n - n - - smtpd"]
    keep = False
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line[0].isspace():
            if keep:
                lines.append(line)
            continue
        fields = line.split()
        keep = fields[0] in _SERVICES and fields[1] != "inet"
        if keep:
            fields[4] = "n"
            lines.append(" ".join(fields))
    return "\n".join(lines) + "\n"


class ReferencePostfix:
    def __init__(self, address: str, port: int, settings: dict[str, str], aliases: str = "") -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mta-postfix-"))
        self.folder.chmod(0o711)
        self.address, self.port = address, port
        self._added = False
        self.config = self.folder / "etc"
        self.log = self.folder / "maillog"
        self.settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.folder / "queue"),
            "data_directory": str(self.folder / "data"),
            "inet_interfaces": address,
            "inet_protocols": "ipv4",
            "alias_maps": f"hash:{self.config}/aliases",
            "alias_database": f"hash:{self.config}/aliases",
            "maillog_file_prefixes": str(self.folder),
            "maillog_file": str(self.log),
            # No DNS on this machine: a reverse lookup per client would only wait for its timeout.
            "smtpd_peername_lookup": "no",
            "biff": "no",
            **settings,
            # Whatever the test's settings: local mail stays in this instance's folder, never in a real mailbox.
            "home_mailbox": "",
            "mail_spool_directory": str(self.folder / "mail"),
        }
        self.aliases = aliases

    def __enter__(self) -> ReferencePostfix:
        if not available():
            pytest.fail("Postfix is not installed: scripts/test.sh installs it (Debian's postfix package)")
        self.config.mkdir(parents=True)
        (self.folder / "queue").mkdir()
        (self.folder / "data").mkdir()
        shutil.chown(self.folder / "data", "postfix")
        (self.config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in self.settings.items()))
        (self.config / "master.cf").write_text(_master_cf(self.address, self.port))
        (self.config / "aliases").write_text(self.aliases)
        # Postfix binds only to addresses on an interface; one already there stays after the test.
        self._added = add_loopback_address(self.address)
        self._postfix("postalias", "-c", str(self.config), str(self.config / "aliases"))
        self._postfix("postfix", "-c", str(self.config), "start")
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((self.address, self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise AssertionError(f"the reference Postfix did not start: {self.log_text()}") from None
                time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(["postfix", "-c", str(self.config), "stop"], capture_output=True, check=False, timeout=60)
        if self._added:
            remove_loopback_address(self.address)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _postfix(self, *command: str) -> None:
        done = subprocess.run(list(command), capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)}: {done.stdout}{done.stderr}{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def queue_ids(self) -> list[str]:
        """IDs of the messages in Postfix's queue (postqueue -j of this instance)."""
        done = subprocess.run(["postqueue", "-c", str(self.config), "-j"], capture_output=True, text=True, check=False)
        return re.findall(r'"queue_id": "([0-9A-F]+)"', done.stdout)


@contextlib.contextmanager
def reference_postfix(address: str, port: int, settings: dict[str, str], aliases: str = "") -> Iterator[ReferencePostfix]:
    with ReferencePostfix(address, port, settings, aliases) as postfix:
        yield postfix
