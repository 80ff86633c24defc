"""provision-mta and a reference Postfix started with the same main.cf
settings and aliases, for the adversarial tests that send both the same bytes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.mta import PORT, Daemon, Raw, main_cf, running
from tests.support.mta_postfix import ReferencePostfix


@dataclass
class Pair:
    mta: Daemon
    postfix: ReferencePostfix

    def raw(self, which: str, source: str) -> Raw:
        if which == "mta":
            return Raw(self.mta.address, self.mta.port, source=source)
        return Raw(self.postfix.address, self.postfix.port, source=source)

    def replies(self, lines: list[bytes], source: str) -> dict[str, list[tuple[int, str]]]:
        """Each server's reply to each line, sent one at a time from ``source``."""
        answers = {}
        for which in ("mta", "postfix"):
            with self.raw(which, source) as raw:
                answers[which] = [raw.command(line) for line in lines]
        return answers


@contextlib.contextmanager
def pair(folder: Path, mta_address: str, postfix_address: str, settings: dict[str, str], aliases: str, **mta_only: str) -> Iterator[Pair]:
    """Both servers up (each on its address, port 2526) with ``settings`` and ``aliases``;
    ``mta_only`` settings go to provision-mta alone."""
    daemon = Daemon(folder / "etc", folder / "spool", mta_address)
    main_cf(
        daemon.config_directory,
        {
            **settings,
            "inet_interfaces": mta_address,
            "queue_directory": str(daemon.queue),
            "alias_maps": f"hash:{daemon.config_directory}/aliases",
            **mta_only,
        },
    )
    (daemon.config_directory / "aliases").write_text(aliases)
    with ReferencePostfix(postfix_address, PORT, settings, aliases) as postfix, running(daemon):
        yield Pair(daemon, postfix)
