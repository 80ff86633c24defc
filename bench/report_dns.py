"""How long the report's DNS checks of one host take behind a resolver that never answers.

Usage: python3 bench/report_dns.py [--addresses 6] [--timeout 3]

A UDP socket on 127.84.0.95:5395 takes the queries and never answers. The
report checks a host's addresses at once within one timeout
(``DnsChecker.check_all``); checking them one after another, as the report
did before, costs a timeout per address. Prints both, and writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import time
from pathlib import Path

from provision.report.dns_check import DnsChecker

ADDRESS, PORT = "127.84.0.95", 5395


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    pairs = [(f"127.84.9.{n}", f"out{n}.example.test") for n in range(1, args.addresses + 1)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind((ADDRESS, PORT))
        started = time.monotonic()
        DnsChecker([(ADDRESS, PORT)], args.timeout).check_all(pairs)
        at_once = time.monotonic() - started
        checker = DnsChecker([(ADDRESS, PORT)], args.timeout)
        started = time.monotonic()
        for address, helo in pairs:
            checker.check(address, helo)
        in_turn = time.monotonic() - started
    figures = {"addresses": args.addresses, "timeout": args.timeout, "at_once_seconds": round(at_once, 2)}
    figures["in_turn_seconds"] = round(in_turn, 2)
    print(f"{args.addresses} addresses, silent resolver, timeout {args.timeout:g} s:", end=" ")
    print(f"at once {at_once:.2f} s, one after another {in_turn:.2f} s")
    results = Path(__file__).resolve().parent / "results"
    results.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    (results / f"report-dns-{stamp}.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
