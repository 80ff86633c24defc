"""A sink in its own process that counts Message-IDs, for the crash tests.

In its own process so that the load's client threads do not delay its
answers: a 250 held up after the sink kept a message widens the window in
which a crash of the sender means a second copy. Each kept Message-ID is
appended to ``LOG`` (one line, flushed) before the 250 goes out; while the
file ``LOG.refuse`` exists every message gets 421 instead.

    python3 -m tests.support.counting_sink ADDRESS PORT LOG
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from typing import Any

from aiosmtpd.smtp import SMTP


class CountingHandler:
    def __init__(self, log: str) -> None:
        self.log = log
        self.output = open(log, "a", encoding="ascii")  # noqa: SIM115 - open for the process's life

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if os.path.exists(self.log + ".refuse"):
            return "421 4.3.2 Service not available, try later"
        found = re.search(rb"Message-ID: (<[^>]+>)", envelope.original_content or b"")
        self.output.write((found.group(1).decode() if found else "<none>") + "\n")
        self.output.flush()
        return "250 OK counted"


async def serve(address: str, port: int, log: str) -> None:
    handler = CountingHandler(log)
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(handler, hostname=address), address, port)
    print("ready", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
