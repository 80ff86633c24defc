"""The built-in MTA beside Postfix, both driven by Postfix's smtp-source.

    python3 bench/mta.py [--messages 5000] [--sessions 20] [--size 4096] [--repeat 3] [--intake-processes N]

One lab host runs Postfix (installed and configured by the postfix role) and
Postfix's smtp-sink as the next hop; provision-mta runs on the controller
with its own loopback address. The same smtp-source command, run on the lab
host, sends the same load to each; both queues are durable (Postfix fsyncs
its queue files, provision-mta group-commits). Measured per server: intake
(smtp-source's wall time: every message has had its 250) and end to end
(until the queue is empty, everything relayed to the sink). Prints messages
per second and writes bench/results/mta-DATE.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from provision.lab.lab import Lab, address_block  # noqa: E402

SINK_PORT = 2525


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=True, **kwargs)  # type: ignore[call-overload]


def wait_empty(count: object, timeout: float = 600) -> float:
    started = time.monotonic()
    while count() > 0:  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise SystemExit("the queue did not drain")
        time.sleep(0.1)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--intake-processes", type=int, default=os.cpu_count() or 1, help="provision-mta's SMTP intake processes")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, each Postfix then provision-mta")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mta-bench-"))
    lab = Lab("mtabench", root=scratch / "lab", namespace="provision-bench")
    lab.up(1, say=lambda text: None)
    host = lab.host("mtabench-1")
    sink = host.extra_addresses[0]
    mta_address = f"{address_block('provision-bench/mtabench')}.250"
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

        runs: dict[str, list[tuple[float, float]]] = {"postfix": [], "provision-mta": []}

        def measure(name: str, target: str, queued: object) -> None:
            started = time.monotonic()
            code, output = lab.exec(host.name, [*source, f"{target}:25"])
            if code != 0:
                raise SystemExit(f"smtp-source against {name} failed: {output}")
            intake = time.monotonic() - started
            drained = wait_empty(queued) - started
            runs[name].append((intake, drained))
            print(f"{name:>13}: intake {args.messages / intake:7.0f} msg/s   end to end {args.messages / drained:7.0f} msg/s", flush=True)

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
            return sum(1 for folder in (scratch / "mta-spool").iterdir() for p in folder.iterdir() if not p.name.startswith("."))

        # Alternating, so that both see the same machine at the same moments.
        for _round in range(args.repeat):
            measure("postfix", host.address, postfix_queue)
            measure("provision-mta", mta_address, mta_queue)
        for name, times in runs.items():
            intake = statistics.median(t for t, _ in times)
            drained = statistics.median(d for _, d in times)
            results[name] = {
                "runs": [{"intake_seconds": round(t, 2), "end_to_end_seconds": round(d, 2)} for t, d in times],
                "median_intake_per_second": round(args.messages / intake),
                "median_delivered_per_second": round(args.messages / drained),
            }
            print(f"{name:>13}: median intake {args.messages / intake:7.0f} msg/s   end to end {args.messages / drained:7.0f} msg/s")
    finally:
        if mta is not None:
            mta.terminate()
            mta.wait(60)
        subprocess.run(["ip", "addr", "del", f"{mta_address}/32", "dev", "lo"], capture_output=True, check=False)
        lab.down()
    out = BENCH / "results" / f"mta-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
