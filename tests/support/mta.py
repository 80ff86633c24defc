"""Helpers for the built-in MTA's tests: the real daemon in its own process,
main.cf/master.cf writers, SMTP clients (smtplib's, and a raw one that sends
exactly the bytes it is given), the operator command, and the kill -9 load.

Addresses: every MTA test lives in 127.81.0.0/16 (this suite's block), one
/24 per test module, so that modules can run side by side; a client
"outside mynetworks" comes from 127.81.200.0/24 and up.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from provision_mta.queue import QUEUES

PORT = 2526


@dataclass
class Daemon:
    """``provision-mta serve`` with a config folder and a queue of its own; its log in ``daemon.log``."""

    config_directory: Path
    queue: Path
    address: str
    port: int = PORT
    nofile: int | None = None
    """RLIMIT_NOFILE to start it with (as systemd's LimitNOFILE would), or the test's own."""
    arguments: list[str] = field(default_factory=list)
    passwd: Path | None = None
    """A passwd file the daemon sees as /etc/passwd (a mount namespace of its own),
    for local users with mailboxes in the test's folder; the machine's stays as it is."""
    code: Path | None = None
    """Run the provision_mta package from this source tree (bench/mta.py: before and after)."""
    process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        limit = self.nofile

        def limited() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        command = [sys.executable, "-m", "provision_mta.daemon", "-c", str(self.config_directory), "serve", "--port", str(self.port)]
        if self.passwd is not None:
            # unshare execs in place: the PID is the daemon's, for kill -9 and the Maildir names.
            mount = 'mount --bind "$0" /etc/passwd && exec "$@"'
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, str(self.passwd), *command]
        environment = {**os.environ, "PYTHONPATH": str(self.code)} if self.code is not None else None
        # A file, not a pipe: the daemon logs every delivery, and a full pipe would stall it.
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, *self.arguments], stdout=log, stderr=subprocess.STDOUT, preexec_fn=limited, env=environment, cwd=self.code
            )
        if not wait:
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"provision-mta exited: {self.log.read_text()[-3000:]}"
            try:
                socket.create_connection((self.address, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("provision-mta did not start")

    @property
    def log(self) -> Path:
        return self.config_directory / "daemon.log"

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> str:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=60)
        return self.log.read_text()

    def stop_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()

    def queued(self, queues: tuple[str, ...] = QUEUES) -> list[Path]:
        return [p for name in queues if (self.queue / name).is_dir() for p in (self.queue / name).iterdir() if not p.name.startswith(".")]


def passwd_with(folder: Path, user: str) -> tuple[Path, Path]:
    """The machine's passwd plus ``user`` (root's IDs) with a home in ``folder``: (the file, the home)."""
    home = folder / user
    home.mkdir(parents=True, exist_ok=True)
    passwd = folder / "passwd"
    passwd.write_text(Path("/etc/passwd").read_text() + f"{user}:x:0:0:test mailbox:{home}:/usr/sbin/nologin\n")
    return passwd, home


def main_cf(folder: Path, settings: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.cf").write_text("".join(f"{name} = {value}\n" for name, value in settings.items()))


def relay_config(folder: Path, queue: Path, address: str, sink: str, sink_port: int, out: tuple[str, str], **extra: str) -> None:
    """A daemon on ``address`` relaying everything to ``sink``, with two master.cf
    transports bound to the ``out`` addresses (out1 for @news.example.test, out2
    for every other sender) and retries within seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "myhostname": "mta.example.test",
        "mydestination": "$myhostname",
        "mynetworks": "127.0.0.0/8",
        "inet_interfaces": address,
        "queue_directory": str(queue),
        "relayhost": f"[{sink}]:{sink_port}",
        "sender_dependent_default_transport_maps": f"hash:{folder}/sender_transport, randmap:{{out2}}",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "queue_run_delay": "1s",
        **extra,
    }
    main_cf(folder, settings)
    service = "unix  -       -       n       -       -       smtp"
    (folder / "master.cf").write_text(
        f"smtp      {service}\n"
        f"out1      {service}\n  -o smtp_bind_address={out[0]}\n  -o smtp_helo_name=out1.example.test\n"
        f"out2      {service}\n  -o {{ smtp_bind_address = {out[1]} }}\n  -o smtp_helo_name=out2.example.test\n"
    )
    (folder / "sender_transport").write_text("@news.example.test out1:\n")


@contextlib.contextmanager
def running(daemon: Daemon) -> Iterator[Daemon]:
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop_if_running()


def smtp_client(address: str, port: int = PORT, source: str | None = None, timeout: float = 10) -> smtplib.SMTP:
    return smtplib.SMTP(address, port, timeout=timeout, source_address=(source or address, 0))


def mta(config_directory: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """``provision-mta -c CONFIG ARGS...``, as an operator (or sendmail's caller) runs it."""
    command = [sys.executable, "-m", "provision_mta.daemon", "-c", str(config_directory), *args]
    return subprocess.run(command, input=stdin, capture_output=True, check=False, timeout=60)


def wait_until(condition: Callable[[], object], timeout: float = 20, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Raw:
    """A raw SMTP client: sends exactly the bytes it is given (CR, LF, NUL and
    all), reads whole replies. For what smtplib would refuse to send."""

    def __init__(self, address: str, port: int = PORT, source: str | None = None, timeout: float = 10) -> None:
        self.sock = socket.create_connection((address, port), timeout=timeout, source_address=(source or address, 0))
        self.buffer = b""
        self.banner = self.reply()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, str]:
        """One whole reply (every line of a multi-line one); (0, "") when the server hung up."""
        lines: list[str] = []
        while True:
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return (0, "") if not lines else (int(lines[-1][:3]), "\n".join(lines))
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\n", 1)
            text = line.rstrip(b"\r").decode("utf-8", "replace")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), "\n".join(lines)

    def command(self, line: bytes) -> tuple[int, str]:
        self.send(line + b"\r\n")
        return self.reply()

    def code(self, line: bytes) -> int:
        return self.command(line)[0]

    def begin(self, sender: bytes, recipients: list[bytes], helo: bytes = b"client.example.org") -> list[int]:
        """EHLO, MAIL, RCPT..., DATA: one code per step (the data is the caller's)."""
        codes = [self.code(b"EHLO " + helo), self.code(b"MAIL FROM:<" + sender + b">")]
        codes += [self.code(b"RCPT TO:<" + r + b">") for r in recipients]
        codes.append(self.code(b"DATA"))
        return codes

    def message(self, sender: bytes, recipients: list[bytes], data: bytes, helo: bytes = b"client.example.org") -> list[int]:
        """:meth:`begin`, then the data (dot-stuffing and the final dot are the caller's) and its reply."""
        codes = self.begin(sender, recipients, helo)
        if codes[-1] == 354:
            self.send(data)
            codes.append(self.reply()[0])
        return codes


def load_with_kills(
    daemon: Daemon,
    total: int = 2000,
    clients: int = 20,
    kills: int = 3,
    recipient: str = "sink@remote.example.org",
    interval: float = 1.0,
    on_kill: Callable[[int], None] = lambda number: None,
) -> set[str]:
    """Send ``total`` messages from ``clients`` threads while the daemon is killed
    with SIGKILL ``kills`` times (``interval`` s apart) and started again; the
    Message-IDs that got 250. ``on_kill(n)`` runs between kill n and the restart."""
    acknowledged: set[str] = set()
    lock = threading.Lock()
    numbers = iter(range(total))

    def sender() -> None:
        smtp: smtplib.SMTP | None = None
        for number in numbers:
            message_id = f"<load-{number}@example.test>"
            body = f"Message-ID: {message_id}\r\nSubject: load {number}\r\n\r\n".encode() + (b"x" * 76 + b"\r\n") * 26
            # One attempt per message: after a lost connection the outcome is
            # unknown, and resending would make the count of duplicates meaningless.
            try:
                if smtp is None:
                    smtp = smtp_client(daemon.address, daemon.port)
                    smtp.ehlo("load.example.test")
                smtp.sendmail("load@example.test", [recipient], body)
                with lock:
                    acknowledged.add(message_id)
            except (OSError, smtplib.SMTPException):
                smtp = None
                time.sleep(0.05)

    threads = [threading.Thread(target=sender) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for kill in range(kills):
        time.sleep(interval)
        daemon.kill()
        on_kill(kill + 1)
        daemon.start()
    for thread in threads:
        thread.join()
    assert len(acknowledged) > total * 0.5, f"only {len(acknowledged)} of {total} acknowledged: the daemon was down too long"
    return acknowledged


def self_signed(folder: Path, name: str, alt: str | None = None) -> tuple[Path, Path]:
    """A key and certificate for ``name`` made by real OpenSSL; ``alt`` is the subjectAltName (DNS:... or IP:...)."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"]
    command += ["-subj", f"/CN={name}", "-addext", f"subjectAltName={alt or 'DNS:' + name}"]
    subprocess.run(command, check=True, capture_output=True)
    return key, cert
