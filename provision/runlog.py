"""The run log: one JSON line per ``apply`` and ``check``, on the controller.

Each record says who ran what against which hosts and what came of it on
each host (status, the paths, packages and services that changed or would
change, handlers, errors), under the same run id as the host's backups
(``/var/backups/provision/<run>/``). It never holds a file's content, a
diff or a secret value: errors are masked with the host's secrets as
everywhere else. The file is ``runs.jsonl`` in provision's state folder
(``provision.statedir``), one line per run, appended under a lock so that
concurrent runs never interleave; ``provision history`` reads it.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision.engine.converge import HostResult
from provision.engine.diffs import mask
from provision.statedir import private_dir, state_dir

RECORD_VERSION = 1
ERROR_CHARS = 2000
"""Enough of an error to know what it was; the full text is in the run's own output."""


def log_file() -> Path:
    return state_dir() / "runs.jsonl"


@dataclass(frozen=True)
class RunRecord:
    """What the command line knows of a run, beside its results."""

    run_id: str
    command: str
    inventory: Sequence[Path]
    limit: str | None
    tags: str | None
    check: bool
    started: float


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a container)
        return str(os.getuid())


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def host_entry(result: HostResult, secrets: Sequence[str]) -> dict[str, Any]:
    return {
        "status": str(result.status),
        "changed": [f.path for f in result.files],
        "directories": list(result.directories),
        "packages": list(result.packages),
        "services": list(result.services),
        "handlers": list(result.handlers),
        "errors": [mask(error, list(secrets))[:ERROR_CHARS] for error in result.errors],
        "round_trips": result.round_trips,
        "seconds": result.seconds,
    }


def record(run: RunRecord, results: Sequence[HostResult], secrets: dict[str, list[str]]) -> dict[str, Any]:
    finished = time.time()
    summary: dict[str, int] = {}
    for result in results:
        summary[str(result.status)] = summary.get(str(result.status), 0) + 1
    return {
        "version": RECORD_VERSION,
        "run_id": run.run_id,
        "command": run.command,
        "check": run.check,
        "started": _timestamp(run.started),
        "finished": _timestamp(finished),
        "seconds": round(finished - run.started, 3),
        "user": _user(),
        "controller": socket.gethostname(),
        "cwd": os.getcwd(),
        "inventory": [str(Path(p).resolve()) for p in run.inventory],
        "limit": run.limit,
        "tags": run.tags,
        "hosts": {r.host: host_entry(r, secrets.get(r.host, [])) for r in results},
        "summary": summary,
    }


def append(entry: dict[str, Any], path: Path | None = None) -> Path:
    """Append one line; raises OSError when the log cannot be written."""
    target = path or log_file()
    private_dir(target.parent)
    line = (json.dumps(entry, sort_keys=False, separators=(",", ":")) + "\n").encode("utf-8")
    descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        # One write under an exclusive lock: two runs finishing at once never mix their lines.
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        written = 0
        while written < len(line):
            written += os.write(descriptor, line[written:])
    finally:
        os.close(descriptor)
    return target


def read(path: Path | None = None) -> Iterator[dict[str, Any]]:
    """Every record, oldest first; a line that is not a record (a torn write, an edit) is passed over."""
    target = path or log_file()
    try:
        handle = target.open("rb")
    except FileNotFoundError:
        return
    with handle:
        for raw in handle:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("hosts"), dict):
                yield entry
