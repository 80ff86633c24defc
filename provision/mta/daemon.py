"""``provision-mta``: the daemon and its operator commands.

    provision-mta serve [-c /etc/postfix] [--port 25]
    provision-mta queue list|count

Reads main.cf from the config folder (as the postfix role renders it);
warns once about every parameter it does not implement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

import dns.resolver

from provision.mta.config import MtaConfig, load_config
from provision.mta.qmgr import QueueManager
from provision.mta.queue import QUEUES, GroupCommitter, Queue, read_envelope
from provision.mta.smtpd import smtp_factory


async def serve(config: MtaConfig, port: int, master_cf: Path, resolver: dns.resolver.Resolver | None) -> None:
    queue = Queue(config.queue_directory)
    queue.recover()
    committer = GroupCommitter(queue)
    manager = QueueManager(config, queue, committer, master_cf, resolver)
    loop = asyncio.get_running_loop()
    hosts = None if config.inet_interfaces in (["all"], []) else config.inet_interfaces
    hosts = ["127.0.0.1", "::1"] if hosts == ["loopback-only"] else hosts
    server = await loop.create_server(smtp_factory(config, committer, manager.kick.set), host=hosts, port=port, reuse_address=True)
    stop = asyncio.Event()
    delivering = asyncio.create_task(manager.run(stop))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"provision-mta: listening on {', '.join(hosts or ['*'])} port {port}, queue {config.queue_directory}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()
    await delivering
    # Sessions still in DATA finish their commit before the committer stops.
    committer.close()


def _resolver(text: str | None) -> dns.resolver.Resolver | None:
    if not text:
        return None
    from provision.report.dns_check import parse_nameserver

    host, port = parse_nameserver(text)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.nameserver_ports = [host], {host: port}
    return resolver


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="provision-mta", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config-directory", type=Path, default=Path("/etc/postfix"))
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the SMTP server")
    run.add_argument("--port", type=int, default=25)
    run.add_argument("--dns-server", default=None, metavar="IP[:PORT]", help="resolver for MX lookups (default the system's)")
    listing = commands.add_parser("queue", help="look at the queue")
    listing.add_argument("action", choices=["list", "count"])
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config_directory / "main.cf")
    except (OSError, ValueError) as exc:
        sys.exit(f"provision-mta: {args.config_directory / 'main.cf'}: {exc}")
    if args.command == "serve":
        for name in config.unsupported:
            print(f"provision-mta: warning: {name} is not supported and has no effect", file=sys.stderr, flush=True)
        asyncio.run(serve(config, args.port, args.config_directory / "master.cf", _resolver(args.dns_server)))
    else:
        queue = Queue(config.queue_directory)
        if args.action == "count":
            print(json.dumps({name: len(queue.list(name)) for name in QUEUES}))
        else:
            for name in QUEUES:
                for queue_id in queue.list(name):
                    envelope = read_envelope(queue.folder(name) / queue_id)
                    print(f"{queue_id} {name} {envelope.size} {envelope.sender or '<>'} -> {', '.join(envelope.recipients)}")


if __name__ == "__main__":
    main()
