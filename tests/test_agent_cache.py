"""The agent cached on the host by the hash of its source (provision.agent.bootstrap).

The real bootstrap runs in a real ``python3 -I -S -B`` through the local
connector, into a temporary root (as root, the cache goes to
ROOT/var/lib/provision/agent/HASH/): sent once with the first call, then
the hash alone; a damaged, truncated, foreign or loosely permitted cache is
never used, and the call is made once more with the sources.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from provision.agent.protocol import ProbeAnswer, ProbeRequest
from provision.connectors.base import CommandResult, ConnectionSettings, Connector, CountingConnector
from provision.connectors.local import LocalConnector
from provision.engine.agent_call import agent_command, agent_payload, call_agent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the cache path asserted here is root's")

PROBE: ProbeRequest = {
    "op": "probe",
    "files": [],
    "directories": [],
    "packages": [],
    "services": [],
    "facts": {},
    "extra_files": [],
    "public_keys": [],
    "versions": [],
    "candidates": [],
}


class RecordingLocal(LocalConnector):
    """The local connector, noting how many bytes each call sent and keeping notes as OpenSSH's shared
    connection does (for the connection's lifetime, here the object's)."""

    def __init__(self, settings: ConnectionSettings) -> None:
        super().__init__(settings)
        self.sent: list[int] = []
        self.notes: set[str] = set()

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        self.sent.append(len(stdin))
        return super().run(command, stdin, timeout)

    def remembers(self, key: str) -> bool:
        return key in self.notes

    def remember(self, key: str, present: bool) -> None:
        (self.notes.add if present else self.notes.discard)(key)


def host(tmp_path: Path) -> RecordingLocal:
    return RecordingLocal(ConnectionSettings(name="local", connection="local", root=str(tmp_path)))


def cache_file(tmp_path: Path) -> Path:
    folder = tmp_path / "var/lib/provision/agent" / agent_payload("probe").digest
    (found,) = folder.glob("*.code")
    return found


def probe(connector: Connector) -> ProbeAnswer:
    answer = call_agent(connector, PROBE)
    assert answer.get("ok"), answer
    return answer


def test_sent_once_then_the_hash_alone_across_runs_on_one_connection(tmp_path: Path) -> None:
    connection = host(tmp_path)
    compressed = len(agent_payload("probe").compressed)
    # Run 1 (a fresh connection): the sources come with the call and are cached, compiled.
    first = CountingConnector(connection)
    probe(first)
    assert connection.sent[0] > compressed
    assert cache_file(tmp_path).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "var/lib/provision/agent").stat().st_mode & 0o777 == 0o700
    # Run 2 over the same shared connection: the hash alone, still one round trip.
    second = CountingConnector(connection)
    probe(second)
    assert connection.sent[1] < compressed and second.round_trips == 1


def test_without_shared_connection_each_run_sends_it_once_and_the_host_compiles_it_once(tmp_path: Path) -> None:
    plain = LocalConnector(ConnectionSettings(name="local", connection="local", root=str(tmp_path)))
    run = CountingConnector(plain)
    probe(run)
    stamp = cache_file(tmp_path).stat().st_mtime_ns
    probe(run)  # the second call of the run: the hash alone, from the cache
    again = CountingConnector(LocalConnector(plain.settings))
    probe(again)  # a new run: sent again, but not compiled again (the cached code is still valid)
    assert cache_file(tmp_path).stat().st_mtime_ns == stamp
    assert run.round_trips == 2 and again.round_trips == 1


def planted(path: Path, marker: Path) -> bytes:
    """A well-formed cache file whose code is not the agent's: it would create ``marker`` if run."""
    digest = path.parent.name
    names = [name for name, _ in agent_payload("probe").modules]
    code = compile(f"open({str(marker)!r}, 'w').close()", "provision.agent.core", "exec")
    return marshal.dumps([[digest, names], [code]])


def half_written(path: Path, marker: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def altered(path: Path, marker: Path) -> None:
    path.write_bytes(path.read_bytes()[:32] + planted(path, marker))  # the digest no longer matches


def exposed(path: Path, marker: Path) -> None:
    """A valid digest, but the file is writable by others: whoever could write it is not trusted."""
    body = planted(path, marker)
    path.write_bytes(hashlib.sha256(path.parent.name.encode() + body).digest() + body)
    os.chmod(path, 0o666)


def foreign(path: Path, marker: Path) -> None:
    body = planted(path, marker)
    path.write_bytes(hashlib.sha256(path.parent.name.encode() + body).digest() + body)
    os.chown(path, 65534, 65534)


def folder_exposed(path: Path, marker: Path) -> None:
    body = planted(path, marker)
    scratch = path.with_suffix(".new")  # replaced by a file someone else could have put there
    scratch.write_bytes(hashlib.sha256(path.parent.name.encode() + body).digest() + body)
    os.chmod(scratch, 0o600)
    os.replace(scratch, path)
    os.chmod(path.parent, 0o777)


@pytest.mark.parametrize("damage", [half_written, altered, exposed, foreign, folder_exposed])
def test_a_damaged_or_exposed_cache_is_never_used(tmp_path: Path, damage: Callable[[Path, Path], None]) -> None:
    connection = host(tmp_path)
    probe(CountingConnector(connection))
    path = cache_file(tmp_path)
    marker = tmp_path / "planted-code-ran"
    damage(path, marker)
    run = CountingConnector(connection)
    probe(run)
    assert not marker.exists()
    # The hash alone was refused ("agent_missing"), so the same call went again with the sources:
    # a second round trip, only in this case.
    assert run.round_trips == 2 and connection.sent[-1] > len(agent_payload("probe").compressed)
    if os.stat(path.parent).st_mode & 0o022 == 0:
        # Replaced by a good copy (the folder was still private).
        assert path.stat().st_uid == 0 and path.stat().st_mode & 0o777 == 0o600
        run = CountingConnector(connection)
        probe(run)
        assert run.round_trips == 1


@pytest.mark.parametrize("corrupt", ["bit-flip", "other-source"])
def test_sources_that_do_not_match_their_hash_are_neither_run_nor_cached(tmp_path: Path, corrupt: str) -> None:
    payload = agent_payload("probe")
    settings = ConnectionSettings(name="local", connection="local", root=str(tmp_path))
    if corrupt == "bit-flip":
        damaged = bytearray(payload.compressed)
        damaged[len(damaged) // 2] ^= 0xFF
        sent = bytes(damaged)
    else:  # a valid stream of other code of the same size: it would run if the hash were not checked
        size = payload.modules[0][1]
        sent = zlib.compress(b"import os; os.system('touch " + str(tmp_path / "ran").encode() + b"')".ljust(size, b" "))
    inline = replace(payload, compressed=sent)
    command = agent_command("python3", False, str(tmp_path), inline, inline=True)
    done = LocalConnector(settings).run(command, sent + b'{"op": "probe"}')
    assert b"hash mismatch" in done.stdout
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "var/lib/provision/agent" / payload.digest).exists()
