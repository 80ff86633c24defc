"""Keep ``provision-mta serve`` running where no systemd does (containers, sysvinit).

The supervisor starts the daemon, passes SIGHUP (reload) and SIGTERM/SIGINT
(stop) on to it, and starts it again when it dies by itself, waiting
longer each time it dies soon after starting (1 s up to 60 s), as systemd's
``Restart=always`` with a growing ``RestartSec`` would. The queue is on
disk, so a restart loses nothing that was acknowledged.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType


def supervise(serve_arguments: list[str]) -> int:
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    delay = 1.0
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", "provision_mta.daemon", *serve_arguments])
        status = child.wait()
        if stopping:
            break
        delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 60.0)
        print(f"provision-mta: daemon exited with status {status}; starting it again in {delay:.0f} s", file=sys.stderr, flush=True)
        time.sleep(delay)
    return 0
