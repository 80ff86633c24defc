"""Mail leaves from each bound address: a message per transport, relayed to
a sink on the host that records the connecting address and HELO name.

Runs under ``provision test postfix`` (testinfra's docker:// backend).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

SINK = Path(__file__).with_name("sink.py")


def _postconf(host: Any, parameter: str) -> str:
    return str(host.check_output(f"postconf -h {parameter}"))


def _transport_setting(host: Any, service: str, parameter: str) -> str:
    return str(host.check_output(f"postconf -Ph {service}/unix/{parameter}"))


def test_postfix_runs_on_its_address(host: Any) -> None:
    assert host.package("postfix").is_installed
    assert host.run("postfix status").rc == 0
    address = _postconf(host, "inet_interfaces")
    assert host.socket(f"tcp://{address}:25").is_listening


def test_mail_leaves_from_each_bound_address(host: Any) -> None:
    relay = _postconf(host, "relayhost")  # [127.x.y.z]:2525, the host's own address
    address, port = relay.strip("[").replace("]", "").rsplit(":", 1)
    log = "/tmp/provision-test-sink.jsonl"
    source = base64.b64encode(SINK.read_bytes()).decode()
    host.run(f"rm -f {log}; echo {source} | base64 -d > /tmp/provision-test-sink.py")
    host.run(f"nohup python3 /tmp/provision-test-sink.py {address} {port} {log} >/dev/null 2>&1 &")
    try:
        for _ in range(50):
            if host.socket(f"tcp://{address}:{port}").is_listening:
                break
            time.sleep(0.1)
        expected = {}
        for number, domain in ((1, "one.example.net"), (2, "two.example.net")):
            sender = f"sender@{domain}"
            expected[sender] = (_transport_setting(host, f"out{number}", "smtp_bind_address"), f"out{number}.example.net")
            host.check_output(f"printf 'Subject: scenario\\n\\nbody\\n' | sendmail -f {sender} someone@remote.example.org")
        host.run("postqueue -f")
        seen: dict[str, Any] = {}
        for _ in range(150):
            lines = host.run(f"cat {log} 2>/dev/null").stdout.splitlines()
            seen = {entry["sender"]: entry for entry in map(json.loads, lines)}
            if len(seen) == len(expected):
                break
            time.sleep(0.2)
        assert set(seen) == set(expected), host.run("tail -n 20 /var/log/postfix.log").stdout
        for sender, (bound, helo) in expected.items():
            assert (seen[sender]["peer"], seen[sender]["helo"]) == (bound, helo)
        assert len({entry["peer"] for entry in seen.values()}) == 2  # two transports, two addresses
    finally:
        host.run("pkill -f provision-test-sink.py")
