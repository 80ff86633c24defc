"""The built-in MTA: throughput beside Postfix, and how it holds up under abuse.

    python3 bench/mta.py [compare] [--messages 5000] [--sessions 20] [--size 4096] [--repeat 3] [--intake-processes N]
                         [--namespace NAME] [--address 127.X.Y.Z]
    python3 bench/mta.py connections [--flood 2000] [--nofile 1024] [--code DIR]
    python3 bench/mta.py memory [--sessions 200] [--size 921600] [--code DIR]
    python3 bench/mta.py kills [--messages 1000] [--clients 10] [--kills 3] [--interval 1.5] [--code DIR]

``connections``, ``memory`` and ``kills`` run provision-mta on this machine
(from ``--code``, a source tree, to measure an older version the same way)
and print what they measured (see each function); they are the scenarios of
tests/test_mta_adversarial_resources.py and _queue.py at full size.

``compare``: one lab host runs Postfix (installed and configured by the postfix role) and
Postfix's smtp-sink as the next hop; provision-mta runs on the controller
with its own loopback address. The same smtp-source command, run on the lab
host, sends the same load to each; both queues are durable (Postfix fsyncs
its queue files, provision-mta group-commits). Measured per server: intake
(smtp-source's wall time: every message has had its 250) and end to end
(until the queue is empty, everything relayed to the sink). The rounds
alternate (Postfix, then provision-mta, reversed every other round) so that
both see the same machine; each run is printed with the load average at its
start, then per server the median and the range, and the ratio against
Postfix. Writes bench/results/mta-DATE.json. ``--namespace`` (default
$PROVISION_TEST_NAMESPACE, else provision-bench) names the lab and seeds its
addresses; ``--address`` is provision-mta's (default: in the lab's block).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from provision_mta.queue import QUEUES  # noqa: E402
from tests.support.mta import Daemon, load_with_kills, main_cf, passwd_with, wait_until  # noqa: E402
from tests.support.mta_load import Flood, MemorySampler, big_sessions, daemon_memory, maildir_copies, timed_message  # noqa: E402

SINK_PORT = 2525


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=True)


def wait_empty(count: Callable[[], int], timeout: float = 600) -> float:
    started = time.monotonic()
    while count() > 0:
        if time.monotonic() - started > timeout:
            raise SystemExit("the queue did not drain")
        time.sleep(0.1)
    return time.monotonic()


def compare(args: argparse.Namespace) -> None:
    import yaml

    from provision.lab.lab import Lab, address_block

    scratch = Path(tempfile.mkdtemp(prefix="mta-bench-"))
    lab = Lab("mtabench", root=scratch / "lab", namespace=args.namespace)
    lab.up(1, say=lambda text: None)
    host = lab.host("mtabench-1")
    sink = host.extra_addresses[0]
    mta_address = args.address or f"{address_block(f'{args.namespace}/mtabench')}.250"
    results: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "command": "python3 bench/mta.py " + " ".join(sys.argv[1:]),
        "load": f"smtp-source -s {args.sessions} -m {args.messages} -l {args.size}",
        "intake_processes": args.intake_processes,
        "filesystem": "both queues on the same ext4 disk (Postfix's through the container's overlay2)",
    }
    mta: subprocess.Popen[bytes] | None = None
    try:
        inventory = scratch / "inventory"
        inventory.mkdir()
        variables = {
            "postfix_myhostname": "bench.example.test",
            "postfix_inet_interfaces": [host.address],
            "postfix_relayhost": f"[{sink}]:{SINK_PORT}",
            # The lab has no DNS server: without this each connection waits for a reverse lookup to time out.
            "postfix_main": {"mynetworks": "127.0.0.0/8", "smtpd_client_connection_count_limit": 0, "smtpd_peername_lookup": False},
        }
        (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {host.name: variables}}}))
        (inventory / "site.yml").write_text("- hosts: all\n  roles: [postfix]\n")
        run(["provision", "apply", "-i", str(inventory), "-i", str(lab.inventory_file)])
        # Detached: a process started by a plain exec dies with it.
        lab.client.containers.get(host.container).exec_run(["smtp-sink", "-u", "postfix", f"{sink}:{SINK_PORT}", "1000"], detach=True)
        for _ in range(50):
            if f"{sink}:{SINK_PORT}" in lab.exec(host.name, ["ss", "-ltn"])[1]:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("smtp-sink did not start")
        source = ["smtp-source", "-s", str(args.sessions), "-m", str(args.messages), "-l", str(args.size)]
        source += ["-f", "bench@example.test", "-t", "sink@remote.example.org"]

        def postfix_queue() -> int:
            _code, output = lab.exec(host.name, ["sh", "-c", "postqueue -j | wc -l"])
            return int(output.strip() or 0)

        runs: dict[str, list[dict[str, float]]] = {"postfix": [], "provision-mta": []}

        def measure(name: str, target: str, queued: Callable[[], int]) -> None:
            load = os.getloadavg()[0]
            started = time.monotonic()
            code, output = lab.exec(host.name, [*source, f"{target}:25"])
            if code != 0:
                raise SystemExit(f"smtp-source against {name} failed: {output}")
            intake = time.monotonic() - started
            drained = wait_empty(queued) - started
            runs[name].append({"intake_seconds": round(intake, 2), "end_to_end_seconds": round(drained, 2), "load": round(load, 2)})
            print(
                f"{name:>13}: intake {args.messages / intake:7.0f} msg/s   end to end {args.messages / drained:7.0f} msg/s"
                f"   (load average {load:.2f} at the start)",
                flush=True,
            )

        config = scratch / "mta"
        config.mkdir()
        settings = {
            "myhostname": "bench.example.test",
            "inet_interfaces": mta_address,
            "mynetworks": "127.0.0.0/8",
            "queue_directory": str(scratch / "mta-spool"),
            "relayhost": f"[{sink}]:{SINK_PORT}",
            "default_destination_concurrency_limit": "20",
        }
        (config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        subprocess.run(["ip", "addr", "add", f"{mta_address}/32", "dev", "lo"], capture_output=True, check=False)
        mta = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "provision_mta.daemon",
                "-c",
                str(config),
                "serve",
                "--port",
                "25",
                "--intake-processes",
                str(args.intake_processes),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.5)

        def mta_queue() -> int:
            spool = scratch / "mta-spool"
            return sum(1 for name in QUEUES for p in (spool / name).iterdir() if not p.name.startswith("."))

        # Alternating, and reversed every other round, so that both see the same machine at the same moments.
        servers = [("postfix", host.address, postfix_queue), ("provision-mta", mta_address, mta_queue)]
        for number in range(args.repeat):
            for name, target, queued in servers if number % 2 == 0 else servers[::-1]:
                measure(name, target, queued)
        for name, measured in runs.items():
            intake = sorted(args.messages / run["intake_seconds"] for run in measured)
            delivered = sorted(args.messages / run["end_to_end_seconds"] for run in measured)
            results[name] = {
                "runs": measured,
                "median_intake_per_second": round(statistics.median(intake)),
                "intake_range": [round(intake[0]), round(intake[-1])],
                "median_delivered_per_second": round(statistics.median(delivered)),
                "delivered_range": [round(delivered[0]), round(delivered[-1])],
            }
        for name, summary in results.items():
            if name not in runs:
                continue
            assert isinstance(summary, dict)
            ratio = ""
            if name != "postfix":
                reference = results["postfix"]
                assert isinstance(reference, dict)
                intake_ratio = summary["median_intake_per_second"] / reference["median_intake_per_second"]
                delivered_ratio = summary["median_delivered_per_second"] / reference["median_delivered_per_second"]
                summary["intake_ratio"], summary["delivered_ratio"] = round(intake_ratio, 2), round(delivered_ratio, 2)
                ratio = f"   (x{intake_ratio:.2f} / x{delivered_ratio:.2f} Postfix)"
            low, high = summary["intake_range"]
            print(
                f"{name:>13}: median intake {summary['median_intake_per_second']:5} msg/s ({low}-{high})"
                f"   end to end {summary['median_delivered_per_second']:5} msg/s"
                f" ({summary['delivered_range'][0]}-{summary['delivered_range'][1]}){ratio}"
            )
    finally:
        if mta is not None:
            mta.terminate()
            mta.wait(60)
        subprocess.run(["ip", "addr", "del", f"{mta_address}/32", "dev", "lo"], capture_output=True, check=False)
        lab.down()
    write_results("mta", results)


def write_results(kind: str, results: dict[str, object]) -> None:
    out = BENCH / "results" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written: {out}")


# The scenarios below run on this machine, in 127.81.30.0/24 (the daemon and
# mynetworks) and 127.81.230.0/24 (clients outside mynetworks).
MTA = "127.81.30.1"


def _daemon(folder: Path, code: Path | None, nofile: int | None = None, passwd: Path | None = None, **settings: str) -> Daemon:
    daemon = Daemon(folder / "etc", folder / "spool", MTA, nofile=nofile, passwd=passwd, code=code)
    main_cf(
        daemon.config_directory,
        {
            "myhostname": "mta.example.test",
            "mydestination": "$myhostname",
            "mynetworks": "127.81.30.0/24",
            "inet_interfaces": MTA,
            "queue_directory": str(daemon.queue),
            "alias_maps": f"hash:{daemon.config_directory}/aliases",
            "home_mailbox": "",
            "mail_spool_directory": str(folder / "mail"),
            "relayhost": "[127.81.30.9]:2599",  # closed: remote mail stays deferred
            **settings,
        },
    )
    (daemon.config_directory / "aliases").write_text("postmaster: root\n")
    return daemon


def _meta(args: argparse.Namespace) -> dict[str, object]:
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "command": "python3 bench/mta.py " + " ".join(sys.argv[1:]),
        "code": str(args.code or BENCH.parent),
    }


def connections(args: argparse.Namespace) -> None:
    """``--flood`` idle connections from one client outside mynetworks (issue 13,
    point 4), the daemon started with RLIMIT_NOFILE ``--nofile`` (systemd's
    default soft limit is 1024). Measured: what the flood's connections were
    told, whether 5 sessions opened before it can still queue mail, how long
    10 new clients from elsewhere take to queue a message, and what the log
    grew by in 15 s (or until the new clients are through)."""
    scratch = Path(tempfile.mkdtemp(prefix="mta-bench-"))
    daemon = _daemon(scratch, args.code, nofile=args.nofile)
    daemon.arguments = ["--intake-processes", str(args.intake_processes)]
    results = _meta(args)
    daemon.start()
    try:
        from tests.support.mta import Raw

        before = daemon.log.stat().st_size
        open_sessions = [Raw(MTA, source=f"127.81.230.{10 + n}") for n in range(5)]
        for raw in open_sessions:
            raw.code(b"EHLO early.example.org")
        started = time.monotonic()
        # From outside mynetworks the per-client limit applies; from inside (exempt, as in
        # Postfix) only the session limit and the file descriptors stand in the way.
        flood = Flood(MTA, 2526, "127.81.30.5" if args.inside else "127.81.230.5", args.flood)
        told = flood.read_banners(5.0)
        newcomers = [timed_message(MTA, 2526, "127.81.230.6", b"postmaster@mta.example.test", timeout=30) for _ in range(10)]
        existing = []
        for raw in open_sessions:
            try:
                codes = [raw.code(b"MAIL FROM:<early@example.org>"), raw.code(b"RCPT TO:<postmaster@mta.example.test>"), raw.code(b"DATA")]
                if codes[-1] == 354:
                    raw.send(b"Subject: early\r\n\r\nearly\r\n.\r\n")
                    codes.append(raw.reply()[0])
            except OSError:
                codes = [-1]
            existing.append(codes[-1])
            raw.close()
        time.sleep(max(0.0, 15 - (time.monotonic() - started)))
        log = daemon.log.read_bytes()[before:]
        flood.close()
        results.update(
            {
                "flood": args.flood,
                "flood_from": "inside mynetworks" if args.inside else "outside mynetworks",
                "nofile": args.nofile,
                "intake_processes": args.intake_processes,
                "flood_told": told,
                "new_clients_queued": sum(1 for codes, _ in newcomers if codes[-1:] == [250]),
                "new_clients_seconds_median": round(statistics.median(s for _, s in newcomers), 3),
                "new_clients_seconds_max": round(max(s for _, s in newcomers), 3),
                "open_sessions_final_codes": existing,
                "log_bytes_in_15s": len(log),
                "log_lines_in_15s": log.count(b"\n"),
                "tracebacks_in_15s": log.count(b"Traceback"),
            }
        )
    finally:
        daemon.stop_if_running()
        shutil.rmtree(scratch, ignore_errors=True)
    for name, value in results.items():
        print(f"{name:>28}: {value}")
    write_results("mta-connections", results)


def memory(args: argparse.Namespace) -> None:
    """``--sessions`` sessions (from as many addresses) each sending ``--size``
    bytes at once (issue 13, point 6): the daemon's memory (its intake
    processes, and the queue manager) before, at the peak, and 5 s after."""
    scratch = Path(tempfile.mkdtemp(prefix="mta-bench-"))
    daemon = _daemon(scratch, args.code, default_process_limit=str(args.sessions * 2), message_size_limit=str(args.size * 2))
    results = _meta(args)
    daemon.start()
    try:
        assert daemon.process is not None
        pid = daemon.process.pid
        time.sleep(2)

        intake_before, qmgr_before = daemon_memory(pid)
        with MemorySampler(pid) as sampler:
            sources = [f"127.81.30.{10 + n % 200}" for n in range(args.sessions)]
            codes = big_sessions(MTA, 2526, sources, args.size, b"someone@remote.example.org")
            wait_until(lambda: not daemon.queued(("incoming", "active")), timeout=300, what="the queue manager")
        time.sleep(5)
        intake_after, qmgr_after = daemon_memory(pid)
        intake_peak, qmgr_peak = sampler.peaks
        results.update(
            {
                "sessions": args.sessions,
                "size": args.size,
                "accepted": codes.count(250),
                "intake_mib_before": round(intake_before, 1),
                "qmgr_mib_before": round(qmgr_before, 1),
                "intake_mib_peak": round(intake_peak, 1),
                "qmgr_mib_peak": round(qmgr_peak, 1),
                "intake_mib_after": round(intake_after, 1),
                "qmgr_mib_after": round(qmgr_after, 1),
            }
        )
    finally:
        daemon.stop_if_running()
        shutil.rmtree(scratch, ignore_errors=True)
    for name, value in results.items():
        print(f"{name:>28}: {value}")
    write_results("mta-memory", results)


def kills(args: argparse.Namespace) -> None:
    """``--messages`` messages from ``--clients`` clients to one local Maildir user
    while the daemon is killed with SIGKILL ``--kills`` times, ``--interval`` s
    apart (issue 13, point 9). A client sends each message once (after a lost
    connection the outcome is unknown, and a resend would be the client's
    duplicate, not the MTA's), so every second copy is the MTA's own. Each copy's
    Maildir name holds the PID of the daemon that delivered it: a message in two
    lifetimes is charged to the kill between them."""
    scratch = Path(tempfile.mkdtemp(prefix="mta-bench-"))
    passwd, home = passwd_with(scratch, "maildirtest")
    daemon = _daemon(scratch, args.code, passwd=passwd, home_mailbox="Maildir/")
    results = _meta(args)
    lifetimes: list[int] = []
    daemon.start()
    try:

        def killed(_number: int) -> None:
            assert daemon.process is not None
            lifetimes.append(daemon.process.pid)

        acknowledged = load_with_kills(
            daemon, args.messages, args.clients, args.kills, "maildirtest@mta.example.test", args.interval, on_kill=killed
        )
        assert daemon.process is not None
        lifetimes.append(daemon.process.pid)
        maildir = home / "Maildir"
        wait_until(lambda: acknowledged <= set(maildir_copies(maildir)) and not daemon.queued(), timeout=300, what="delivery")
        copies = maildir_copies(maildir)
        lifetime = {str(pid): index for index, pid in enumerate(lifetimes)}
        per_kill = [0] * args.kills
        same_lifetime = 0
        for pids in copies.values():
            if len(pids) < 2:
                continue
            spans = sorted(lifetime.get(pid, -1) for pid in pids)
            if len(set(spans)) < len(spans):
                same_lifetime += 1
            for first, second in itertools.pairwise(spans):
                if second == first + 1 and 0 <= first < args.kills:
                    per_kill[first] += 1
        results.update(
            {
                "messages": args.messages,
                "clients": args.clients,
                "kills": args.kills,
                "acknowledged": len(acknowledged),
                "delivered_distinct": len(copies),
                "lost": len(acknowledged - set(copies)),
                "delivered_twice": sum(1 for pids in copies.values() if len(pids) > 1),
                "duplicates_per_kill": per_kill,
                "duplicates_within_one_lifetime": same_lifetime,
            }
        )
    finally:
        daemon.stop_if_running()
        shutil.rmtree(scratch, ignore_errors=True)
    for name, value in results.items():
        print(f"{name:>28}: {value}")
    write_results("mta-kills", results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="scenario")
    comparing = commands.add_parser("compare", help="throughput beside Postfix (the default)")
    flooding = commands.add_parser("connections", help="idle connections from one client")
    flooding.add_argument("--flood", type=int, default=2000)
    flooding.add_argument("--nofile", type=int, default=1024)
    flooding.add_argument("--inside", action="store_true", help="flood from inside mynetworks (exempt from the per-client limit)")
    flooding.add_argument("--intake-processes", type=int, default=os.cpu_count() or 1)
    remembering = commands.add_parser("memory", help="many sessions with large messages at once")
    remembering.add_argument("--sessions", type=int, default=200)
    remembering.add_argument("--size", type=int, default=900 * 1024)
    killing = commands.add_parser("kills", help="kill -9 under load with local Maildir delivery")
    killing.add_argument("--messages", type=int, default=1000)
    killing.add_argument("--clients", type=int, default=10)
    killing.add_argument("--kills", type=int, default=3)
    killing.add_argument("--interval", type=float, default=1.5)
    for command in (flooding, remembering, killing):
        command.add_argument("--code", type=Path, default=None, help="source tree to run provision_mta from (default: this one)")
    raw = sys.argv[1:]
    if not raw or raw[0].startswith("-"):
        raw = ["compare", *raw]  # python3 bench/mta.py [options]: the comparison, as before
    comparing.add_argument("--messages", type=int, default=5000)
    comparing.add_argument("--sessions", type=int, default=20)
    comparing.add_argument("--size", type=int, default=4096)
    comparing.add_argument("--intake-processes", type=int, default=os.cpu_count() or 1, help="provision-mta's SMTP intake processes")
    comparing.add_argument("--repeat", type=int, default=3, help="rounds of Postfix and provision-mta (reversed every other round)")
    namespace = os.environ.get("PROVISION_TEST_NAMESPACE") or "provision-bench"
    comparing.add_argument("--namespace", default=namespace, help="the lab's namespace")
    comparing.add_argument("--address", default=None, help="provision-mta's loopback address (default: in the lab's block)")
    args = parser.parse_args(raw)
    {"compare": compare, "connections": connections, "memory": memory, "kills": kills}[args.scenario](args)


if __name__ == "__main__":
    main()
