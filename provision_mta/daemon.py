"""``provision-mta``: the daemon and its operator commands.

    provision-mta [-c /etc/postfix] serve [--port 25] [--dns-server IP[:PORT]]
    provision-mta [-c /etc/postfix] supervise [--port 25] [--dns-server IP[:PORT]]
    provision-mta [-c /etc/postfix] check
    provision-mta queue list|json|count|flush|requeue|delete|hold|release [ID|ALL]
    provision-mta sendmail [-t] [-f SENDER] [-i] [RECIPIENT ...] < message
    (installed as sendmail and mailq, it behaves as those)

Reads main.cf from the config folder (as the postfix role renders it);
warns once about every parameter it does not implement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
from pathlib import Path

import dns.resolver

from provision_mta.admin import act, json_lines, listing
from provision_mta.aliases import parse_aliases
from provision_mta.anvil import SessionCounts
from provision_mta.config import MtaConfig, load_config
from provision_mta.intake import IntakeProcesses, bind, smtpd_main
from provision_mta.listener import raise_file_limit
from provision_mta.nameserver import NameserverError, parse_nameserver, resolver_for
from provision_mta.qmgr import QueueManager, TransportChooser
from provision_mta.queue import CORRUPT, QUEUES, GroupCommitter, Queue
from provision_mta.smtpd import tls_context
from provision_mta.submit import SubmitError, submit


async def serve(config_directory: Path, config: MtaConfig, port: int, resolver: dns.resolver.Resolver, intake_processes: int) -> int:
    """The queue manager here, SMTP intake in ``intake_processes`` children (see ``intake``).
    Returns the exit status: 1 when the queue manager died, so that a supervisor starts it all again."""
    raise_file_limit()
    master_cf = config_directory / "master.cf"
    queue = Queue(config.queue_directory)
    queue.recover()
    committer = GroupCommitter(queue)  # for bounces
    manager = QueueManager(config, queue, committer, master_cf, resolver)
    loop = asyncio.get_running_loop()
    hosts = None if config.inet_interfaces in (["all"], []) else config.inet_interfaces
    hosts = ["127.0.0.1", "::1"] if hosts == ["loopback-only"] else hosts
    sockets = bind(hosts, port)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)

    def woken() -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(wake_read, 65536)
        manager.kick.set()

    loop.add_reader(wake_read, woken)
    intake = IntakeProcesses(config_directory, sockets, wake_write, intake_processes)
    intake.start()
    # After start(): the thread inherits the queue manager's lowered priority, so intake comes first.
    filling = asyncio.create_task(asyncio.to_thread(queue.fill_spares))
    watching = asyncio.create_task(intake.watch())
    stop = asyncio.Event()
    delivering = asyncio.create_task(manager.run(stop))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def reload() -> None:
        # As "postfix reload": new settings for new sessions and deliveries;
        # the listening sockets and the queue stay (inet_interfaces needs a restart).
        try:
            fresh = load_config(config_directory / "main.cf")
        except (OSError, ValueError) as exc:
            print(f"provision-mta: reload refused, keeping the running settings: {exc}", file=sys.stderr, flush=True)
            return
        _warn_unsupported(fresh)
        intake.signal(signal.SIGHUP)
        manager.reload(fresh, master_cf)
        manager.kick.set()
        print("provision-mta: reloaded", flush=True)

    loop.add_signal_handler(signal.SIGHUP, reload)
    print(f"provision-mta: listening on {', '.join(hosts or ['*'])} port {port}, queue {config.queue_directory}", flush=True)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([stopping, delivering], return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if delivering.done() and not stop.is_set():
        # Accepting mail nobody delivers would only fill the queue silently.
        error = delivering.exception()
        print(f"provision-mta: the queue manager died: {type(error).__name__}: {error}; stopping", file=sys.stderr, flush=True)
        status = 1
        stop.set()
    # Intake first: sessions in DATA finish their commit, then nothing new arrives.
    await intake.stop()
    watching.cancel()
    for sock in sockets:
        sock.close()
    if not delivering.done():
        await delivering
    await filling
    committer.close()
    return status


def _warn_unsupported(config: MtaConfig) -> None:
    for name in config.unsupported:
        print(f"provision-mta: warning: {name} is not supported and has no effect", file=sys.stderr, flush=True)
    for name in config.unknown_transports:
        print(f"provision-mta: warning: {name} names no transport of master.cf and has no effect", file=sys.stderr, flush=True)


def check(config_directory: Path, root: Path | None = None) -> None:
    """What a reload would read, checked without touching the running daemon.
    With ``root`` (the python_mta role's staging folder), a file main.cf names
    is read from under it when it is staged there, as it will be once live."""

    def staged(path: str | Path) -> Path:
        candidate = root / str(path).lstrip("/") if root is not None else None
        return candidate if candidate is not None and candidate.exists() else Path(path)

    config = load_config(config_directory / "main.cf")
    _warn_unsupported(config)
    TransportChooser(config, config_directory / "master.cf")
    for path in config.alias_files:
        if staged(path).exists():
            parse_aliases(staged(path).read_text())
    for name in (config.tls_cert_file, config.tls_key_file):
        if name and not staged(name).is_file():
            raise ValueError(f"{name}: no such file (smtpd_tls_cert_file / smtpd_tls_key_file)")
    if config.tls_cert_file and config.tls_key_file:
        config.tls_cert_file, config.tls_key_file = str(staged(config.tls_cert_file)), str(staged(config.tls_key_file))
        try:
            tls_context(config)
        except ssl.SSLError as exc:
            raise ValueError(f"{config.tls_cert_file} and {config.tls_key_file} do not make a usable pair: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    program = Path(sys.argv[0]).name
    raw = list(sys.argv[1:] if argv is None else argv)
    if argv is None and program in ("sendmail", "mailq"):
        # Installed under Postfix's names: behave as those commands.
        raw = ["sendmail", *raw] if program == "sendmail" else ["queue", "list"]
    # sendmail's own options (-t, -i, -f...) are not ours to parse.
    sendmail_arguments: list[str] = []
    if "sendmail" in raw[:3]:
        position = raw.index("sendmail")
        raw, sendmail_arguments = raw[: position + 1], raw[position + 1 :]
    parser = argparse.ArgumentParser(prog="provision-mta", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config-directory", type=Path, default=Path(os.environ.get("MAIL_CONFIG", "/etc/postfix")))
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the SMTP server, pickup and queue manager")
    queue_parser = commands.add_parser("queue", help="list, json (as postqueue -j), count, flush, requeue, delete, hold, release")
    queue_parser.add_argument("action", choices=["list", "json", "count", "flush", "requeue", "delete", "hold", "release"])
    queue_parser.add_argument("which", nargs="?", default=None, help="a queue ID, or ALL")
    checking = commands.add_parser("check", help="check main.cf, master.cf, aliases and the TLS files; exit 1 on an error")
    checking.add_argument("--root", type=Path, default=None, help="read the files main.cf names from under this folder where they are")
    watch = commands.add_parser("supervise", help="run 'serve' and start it again if it dies (hosts without systemd)")
    for command in (run, watch):
        command.add_argument("--port", type=int, default=25)
        command.add_argument("--dns-server", default=None, metavar="IP[:PORT]", help="resolver for MX lookups (default the system's)")
        command.add_argument(
            "--intake-processes", type=int, default=os.cpu_count() or 1, metavar="N", help="SMTP intake processes (default: one per core)"
        )
    child = commands.add_parser("smtpd", help=argparse.SUPPRESS)  # started by serve, not by people
    child.add_argument("--listen-fd", type=int, action="append", default=[])
    child.add_argument("--notify-fd", type=int, required=True)
    child.add_argument("--parent", type=int, required=True)
    child.add_argument("--priority", type=int, default=0)
    child.add_argument("--counts-fd", type=int, required=True)
    child.add_argument("--slot", type=int, required=True)
    child.add_argument("--slots", type=int, required=True)
    commands.add_parser("sendmail", help="submit a message from standard input (sendmail's options follow)")
    args = parser.parse_args(raw)
    if args.command == "supervise":
        from provision_mta.supervise import supervise

        serve_arguments = [
            "-c",
            str(args.config_directory),
            "serve",
            "--port",
            str(args.port),
            "--intake-processes",
            str(args.intake_processes),
        ]
        sys.exit(supervise(serve_arguments + (["--dns-server", args.dns_server] if args.dns_server else [])))
    try:
        config = load_config(args.config_directory / "main.cf")
    except (OSError, ValueError) as exc:
        sys.exit(f"provision-mta: {args.config_directory / 'main.cf'}: {exc}")
    if args.command == "serve":
        try:
            resolver = resolver_for([parse_nameserver(args.dns_server)] if args.dns_server else [])
        except NameserverError as exc:
            sys.exit(f"provision-mta: {exc}")
        _warn_unsupported(config)
        sys.exit(asyncio.run(serve(args.config_directory, config, args.port, resolver, max(1, args.intake_processes))))
    elif args.command == "smtpd":
        counts = SessionCounts(args.counts_fd, args.slots, args.slot)
        smtpd_main(args.config_directory, args.listen_fd, args.notify_fd, args.parent, args.priority, counts)
    elif args.command == "check":
        try:
            check(args.config_directory, args.root)
        except (OSError, ValueError) as exc:
            sys.exit(f"provision-mta: {args.config_directory}: {exc}")
        print(f"provision-mta: {args.config_directory}: ok")
    elif args.command == "sendmail":
        try:
            submit(config, sendmail_arguments, sys.stdin.buffer.read())
        except (SubmitError, OSError) as exc:
            sys.exit(f"sendmail: {exc}")
    else:
        _queue_command(config, args.action, args.which)


def _queue_command(config: MtaConfig, action: str, which: str | None) -> None:
    queue = Queue(config.queue_directory)
    if action == "count":
        print(json.dumps({name: len(queue.list(name)) for name in (*QUEUES, CORRUPT)}))
    elif action == "list":
        print("\n".join(listing(queue)) or "Mail queue is empty")
    elif action == "json":
        print("\n".join(json_lines(queue)))
    else:
        if which is None and action == "delete":
            sys.exit("provision-mta: queue delete needs a queue ID or ALL")
        count = act(queue, action, which or "ALL")
        print(f"provision-mta: {action}: {count} message(s)")


if __name__ == "__main__":
    main()
