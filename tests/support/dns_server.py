"""A real DNS server on loopback for the report's PTR and forward lookups.

Debian's dnsmasq, answering only from the records given here: the test
zones are authoritative (``local=``), nothing is forwarded anywhere, so an
unknown name is NXDOMAIN and no query leaves the machine.
"""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import dns.resolver


class DnsServer:
    def __init__(self, address: str, port: int = 53, zones: tuple[str, ...] = ("test", "127.in-addr.arpa")) -> None:
        if shutil.which("dnsmasq") is None:
            raise RuntimeError("dnsmasq is not installed (apt-get install dnsmasq-base)")
        self.address, self.port, self.zones = address, port, zones
        self.folder = Path(tempfile.mkdtemp(prefix="dns-"))
        self.process: subprocess.Popen[bytes] | None = None

    def serve(
        self,
        forward: Mapping[str, str],
        reverse: Mapping[str, str | Sequence[str]],
        mx: Mapping[str, str] | None = None,
        hosts: Mapping[str, str] | None = None,
        txt: Mapping[str, str | Sequence[str]] | None = None,
    ) -> None:
        """(Re)start with these records: name → address (A/AAAA), address → name or names (PTR),
        mail domain → its mail exchanger's name (MX, preference 10), and ``hosts``:
        name → address with its PTR, a name that exists for every type (other
        types answer "no data", where names of ``forward`` answer NXDOMAIN); and
        ``txt``: name → one record (split into 255-byte strings) or several."""
        lines = [
            f"port={self.port}",
            f"listen-address={self.address}",
            "bind-interfaces",
            "no-resolv",
            "no-hosts",
            "no-negcache",
            f"pid-file={self.folder}/pid",
            *(f"local=/{zone}/" for zone in self.zones),
            *(f"address=/{name}/{address}" for name, address in forward.items()),
            *(
                f"ptr-record={ipaddress.ip_address(address).reverse_pointer},{name}"
                for address, names in reverse.items()
                for name in ([names] if isinstance(names, str) else names)
            ),
            *(f"mx-host={domain},{exchanger},10" for domain, exchanger in (mx or {}).items()),
            *(f"host-record={name},{address}" for name, address in (hosts or {}).items()),
            *(f"txt-record={name},{_txt_strings(text)}" for name, texts in (txt or {}).items() for text in _list(texts)),
        ]
        config = self.folder / "dnsmasq.conf"
        config.write_text("\n".join(lines) + "\n")
        self.stop()
        self.process = subprocess.Popen(
            ["dnsmasq", f"--conf-file={config}", "--keep-in-foreground", "--user=root", f"--log-facility={self.folder}/log"]
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.address]
        resolver.nameserver_ports = {self.address: self.port}
        resolver.lifetime = 0.5
        deadline = time.monotonic() + 10
        while True:
            try:
                resolver.resolve("ready.check.test", "A")
            except dns.resolver.NXDOMAIN:
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dnsmasq did not answer on {self.address}:{self.port}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
            self.process = None

    def __enter__(self) -> DnsServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class SilentDnsServer:
    """A UDP socket on a loopback address that takes DNS queries and never answers."""

    def __init__(self, address: str, port: int) -> None:
        import socket

        self.address, self.port = address, port
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind((address, port))

    def __enter__(self) -> SilentDnsServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None) -> None:
        self.socket.close()


def _list(texts: str | Sequence[str]) -> Sequence[str]:
    return [texts] if isinstance(texts, str) else texts


def _txt_strings(text: str) -> str:
    """One TXT record in dnsmasq's syntax: quoted strings of at most 255 bytes."""
    parts = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    return ",".join('"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"' for part in parts)
