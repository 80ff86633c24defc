"""``provision render``'s output: every host's files under OUT/<host>/<path>.

A thousand hosts make over ten thousand files: folders are made once each
and the writes go through a few threads, since the time is the file
system's, not Python's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from provision.state import DesiredFile


def write_rendered(out: Path, files_by_host: Mapping[str, Mapping[str, DesiredFile]]) -> int:
    def write_host(host: str) -> int:
        files = files_by_host[host]
        targets = [(os.path.join(out, host, path.lstrip("/")), desired) for path, desired in files.items()]
        for folder in sorted({os.path.dirname(target) for target, _ in targets}):
            os.makedirs(folder, exist_ok=True)
        for target, desired in targets:
            mode = 0o600 if desired.secret else 0o644
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                os.fchmod(descriptor, mode)
                view = memoryview(desired.content)
                while view:
                    view = view[os.write(descriptor, view) :]
            finally:
                os.close(descriptor)
        return len(targets)

    # Creating files and folders waits on the file system, not on Python.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return sum(pool.map(write_host, files_by_host))
