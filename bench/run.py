"""provision, Ansible and pyinfra side by side on the same lab hosts, cold and warm.

    python3 bench/run.py [--hosts 1,5,20] [--rounds 3] [--tools provision,ansible,pyinfra]
                         [--steps first,rerun,check,one_changed] [--baseline CHECKOUT]

For each host count and each step (the first converge, a no-change re-run, a
check: provision check, ansible-playbook --check, pyinfra --dry; a run where
one file changed on every host), every tool runs the step twice:

- cold: no connection open (provision's shared OpenSSH connections closed with
  ``provision ssh close``, Ansible's ControlPersist masters with ``ssh -O
  exit``; pyinfra keeps none);
- warm: right after the cold run, its connections still open.

Rounds alternate the tools (the order reversed every other round) so that a
change in the machine's load hits them alike; figures are medians over the
rounds with the spread (min–max). Per run: wall seconds, the controller's CPU
seconds per host (user + sys of the tool's process and every process it
started, ssh and its connection masters included, from getrusage and /proc:
the bench makes itself the child subreaper so that masters that outlive the
tool are still counted), SSH connections and commands per host (from each lab
host's sshd log, LogLevel DEBUG1), and the load average when it started.

``provision-paramiko`` is provision with ``connection: paramiko``;
``--baseline CHECKOUT`` adds ``provision-baseline``: the provision of another
checkout (say main before this change), run with ``python3 -m provision.cli``
from that folder. Prints two tables and writes bench/results/bench-DATE.json.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from tools import ansible_project, provision_project, pyinfra_project  # noqa: E402
from workload import build  # noqa: E402

from provision.lab.lab import Lab  # noqa: E402

STEPS = ("first", "rerun", "check", "one_changed")
MODES = ("cold", "warm")
TOOLS = ("provision", "provision-paramiko", "ansible", "pyinfra")
NAMESPACE = os.environ.get("PROVISION_BENCH_NAMESPACE", "provision-bench")
TICKS = os.sysconf("SC_CLK_TCK")


# --- the controller's CPU ----------------------------------------------------


def become_subreaper() -> None:
    """Orphans of the tools (ssh connection masters) become this process's children, so their CPU is counted."""
    pr_set_child_subreaper = 36
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def reap() -> None:
    """Collect exited adopted masters (their CPU moves into RUSAGE_CHILDREN). Only between runs:
    a subprocess still running would lose its exit status to this."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def controller_cpu() -> float:
    """CPU seconds of everything this process started: exited (getrusage) and still running (/proc)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid; utime, stime, cutime, cstime follow at 11..14
            total += sum(int(value) for value in fields[11:15]) / TICKS
    return total


# --- the lab -----------------------------------------------------------------


def sshd_counts(lab: Lab, since: str) -> tuple[float, float]:
    """Average SSH connections and commands per host since a timestamp, from sshd's own log."""
    connections = commands = 0
    for host in lab.hosts():
        logs = subprocess.run(["docker", "logs", "--since", since, host.container], capture_output=True, text=True, check=False)
        text = logs.stdout + logs.stderr
        connections += text.count("Accepted publickey")
        commands += text.count("request exec") + text.count("request subsystem")
    count = max(1, len(lab.hosts()))
    return connections / count, commands / count


def reset_hosts(lab: Lab, files: dict[str, list[dict[str, str]]]) -> None:
    for host in lab.hosts():
        paths = " ".join(entry["dest"] for entry in files[host.name])
        lab.exec(host.name, ["sh", "-c", f"rm -f {paths}"])


# --- the tools ---------------------------------------------------------------


def tool_environment(runtime: Path) -> dict[str, str]:
    """The tools' environment: provision's control sockets in the bench's own folder, and Python
    allowed to keep its bytecode (with PYTHONDONTWRITEBYTECODE=1, as some shells set, an editable
    install compiles every module of provision on every run: ~0.1 s that no installed wheel pays)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "XDG_RUNTIME_DIR": str(runtime)}


@dataclass
class Bench:
    lab: Lab
    lab_meta: dict[str, Any]
    files: dict[str, list[dict[str, str]]]
    work: Path
    forks: int
    runtime: Path
    baseline: Path | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    marker: int = 0

    def command(self, tool: str, step: str) -> tuple[list[str], Path, dict[str, str]]:
        env = tool_environment(self.runtime)
        if tool.startswith("provision"):
            verb = "check" if step == "check" else "apply"
            inventories = ["-i", str(self.work / "provision"), "-i", str(self.lab.inventory_file)]
            if tool == "provision-paramiko":
                inventories += ["-i", str(self.work / "paramiko.yml")]
            argv = ["provision"]
            if tool == "provision-baseline":
                argv = [sys.executable, "-m", "provision.cli"]
                env["PYTHONPATH"] = str(self.baseline)
                inventories += ["-i", str(self.work / "paramiko.yml")]  # the baseline knew only Paramiko
            return [*argv, verb, *inventories, "--forks", str(self.forks), "--json"], self.work, env
        if tool == "ansible":
            env |= {"ANSIBLE_CONFIG": str(self.work / "ansible" / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "default"}
            return ["ansible-playbook", "-i", "hosts.ini", "site.yml", *(["--check"] if step == "check" else [])], self.work / tool, env
        argv = ["pyinfra", "inventory.py", "deploy.py", "-y", "--parallel", str(self.forks), *(["--dry"] if step == "check" else [])]
        return argv, self.work / tool, env

    def set_marker(self, tool: str, marker: str) -> None:
        if tool.startswith("provision"):
            provision_project(self.work / "provision", self.lab.inventory_file, self.files, marker)
        elif tool == "ansible":
            ansible_project(self.work / "ansible", self.lab_meta, self.files, marker, self.forks)
        else:
            pyinfra_project(self.work / "pyinfra", self.lab_meta, self.files, marker)

    def close_connections(self, tool: str) -> None:
        """Cold: end every connection a tool keeps open."""
        if tool.startswith("provision"):
            subprocess.run(["provision", "ssh", "close"], capture_output=True, check=True, env=tool_environment(self.runtime))
        elif tool == "ansible":
            control = self.work / "ansible" / "cp"
            for socket in control.glob("*") if control.exists() else []:
                subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "x"], capture_output=True, check=False)
        time.sleep(0.3)  # masters exit after answering
        reap()

    def run(self, tool: str, step: str, mode: str, rounds_index: int) -> None:
        argv, cwd, env = self.command(tool, step)
        reap()
        time.sleep(1.0)  # sshd's log has one-second timestamps: keep runs apart
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 0.2))
        load = os.getloadavg()[0]
        cpu_before = controller_cpu()
        started = time.monotonic()
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=env)
        seconds = time.monotonic() - started
        cpu = controller_cpu() - cpu_before
        expected = (0, 2) if (tool.startswith("provision") and step == "check") else (0,)
        if done.returncode not in expected:
            raise SystemExit(f"{tool} {step} ({mode}) failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        time.sleep(1.2)  # let sshd's log reach docker before counting
        connections, commands = sshd_counts(self.lab, since)
        sample = {
            "tool": tool,
            "hosts": self.forks,
            "step": step,
            "mode": mode,
            "round": rounds_index,
            "seconds": round(seconds, 3),
            "cpu_per_host": round(cpu / self.forks, 4),
            "connections_per_host": connections,
            "commands_per_host": commands,
            "load": round(load, 2),
        }
        self.samples.append(sample)
        print(
            f"  N={self.forks} {tool:<19} {step:<12} {mode:<5} {seconds:7.2f}s  cpu/host {cpu / self.forks:6.3f}s  "
            f"conn {connections:4.1f} cmds {commands:5.1f}  load {load:.2f}",
            file=sys.stderr,
        )

    def next_marker(self, tool: str) -> None:
        """A new value in /etc/motd: one file changed on every host."""
        self.marker += 1
        self.set_marker(tool, str(self.marker))

    def converge_untimed(self, tool: str) -> None:
        argv, cwd, env = self.command(tool, "first")
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{tool}: the converge before the figures failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    def tool_round(self, tool: str, steps: list[str], index: int) -> None:
        self.next_marker(tool)
        if "first" not in steps:
            self.converge_untimed(tool)  # rerun and check need converged hosts
        for step in steps:
            for mode in MODES:
                if step == "first":
                    reset_hosts(self.lab, self.files)
                if step == "one_changed":
                    self.next_marker(tool)
                if mode == "cold":
                    self.close_connections(tool)
                self.run(tool, step, mode, index)


def prepare(work: Path, lab: Lab, lab_meta: dict[str, Any], files: dict[str, Any], forks: int) -> None:
    for tool in ("provision", "ansible", "pyinfra"):
        (work / tool).mkdir()
        (work / tool / "templates").symlink_to(work / "workload" / "templates")
    (work / "paramiko.yml").write_text("all:\n  vars:\n    connection: paramiko\n")
    provision_project(work / "provision", lab.inventory_file, files, "0")
    ansible_project(work / "ansible", lab_meta, files, "0", forks)
    pyinfra_project(work / "pyinfra", lab_meta, files, "0")


def summarise(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = sorted({(s["hosts"], s["tool"], s["step"], s["mode"]) for s in samples}, key=lambda k: (k[0], tool_order(k[1]), k[2], k[3]))
    rows = []
    for hosts, tool, step, mode in keys:
        group = [s for s in samples if (s["hosts"], s["tool"], s["step"], s["mode"]) == (hosts, tool, step, mode)]
        seconds = [s["seconds"] for s in group]
        rows.append(
            {
                "hosts": hosts,
                "tool": tool,
                "step": step,
                "mode": mode,
                "rounds": len(group),
                "seconds": round(statistics.median(seconds), 3),
                "seconds_min": min(seconds),
                "seconds_max": max(seconds),
                "cpu_per_host": round(statistics.median(s["cpu_per_host"] for s in group), 4),
                "connections_per_host": statistics.median(s["connections_per_host"] for s in group),
                "commands_per_host": statistics.median(s["commands_per_host"] for s in group),
                "load": [s["load"] for s in group],
            }
        )
    return rows


def tool_order(tool: str) -> int:
    return TOOLS.index(tool) if tool in TOOLS else len(TOOLS)


def print_tables(results: dict[str, Any]) -> None:
    rows = results["summary"]
    steps = [s for s in STEPS if any(r["step"] == s for r in rows)]
    print(
        f"\n{results['date']}, {results['machine']['cores']} cores, {results['machine']['memory_gib']} GiB; "
        f"median wall seconds of {results['rounds']} alternating rounds [min–max]; ratio = tool / provision (same mode)"
    )
    print(f"{'hosts':>5} {'tool':<19}" + "".join(f"{step + ' ' + mode:>27}" for step in steps for mode in MODES))
    index = {(r["hosts"], r["tool"], r["step"], r["mode"]): r for r in rows}
    for hosts, tool in sorted({(r["hosts"], r["tool"]) for r in rows}, key=lambda k: (k[0], tool_order(k[1]))):
        cells = []
        for step in steps:
            for mode in MODES:
                row, base = index.get((hosts, tool, step, mode)), index.get((hosts, "provision", step, mode))
                if row is None:
                    cells.append("-")
                    continue
                ratio = f" x{row['seconds'] / base['seconds']:.1f}" if base and tool != "provision" else ""
                cells.append(f"{row['seconds']:.2f} [{row['seconds_min']:.2f}–{row['seconds_max']:.2f}]{ratio}")
        print(f"{hosts:>5} {tool:<19}" + "".join(f"{c:>27}" for c in cells))
    print("\ncontroller CPU seconds per host (median) / SSH connections per host / commands per host")
    print(f"{'hosts':>5} {'tool':<19}" + "".join(f"{step + ' ' + mode:>22}" for step in steps for mode in MODES))
    for hosts, tool in sorted({(r["hosts"], r["tool"]) for r in rows}, key=lambda k: (k[0], tool_order(k[1]))):
        cells = []
        for step in steps:
            for mode in MODES:
                row = index.get((hosts, tool, step, mode))
                figures = "-" if row is None else f"{row['cpu_per_host']:.3f} / {row['connections_per_host']:.0f}"
                cells.append(figures if row is None else f"{figures} / {row['commands_per_host']:.0f}")
        print(f"{hosts:>5} {tool:<19}" + "".join(f"{c:>22}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="1,5,20", help="host counts, comma-separated (50 if you like)")
    parser.add_argument("--rounds", "--repeat", type=int, default=3, help="alternating rounds (medians and spread over them)")
    parser.add_argument("--tools", default="provision,ansible,pyinfra", help=f"any of {', '.join(TOOLS)}")
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--baseline", type=Path, help="a checkout of provision to compare with (tool provision-baseline)")
    args = parser.parse_args()
    counts = [int(n) for n in args.hosts.split(",")]
    tools = args.tools.split(",") + (["provision-baseline"] if args.baseline else [])
    steps = [s for s in STEPS if s in args.steps.split(",")]
    become_subreaper()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
            "ssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip(),
        },
        "command": "python3 bench/run.py " + " ".join(sys.argv[1:]),
        "rounds": args.rounds,
        "samples": [],
    }
    runtime = Path(tempfile.mkdtemp(prefix="bench-rt-", dir="/tmp"))  # short: control sockets live here
    try:
        for count in counts:
            lab = Lab("bench", root=Path(tempfile.mkdtemp(prefix="bench-lab-")), namespace=NAMESPACE, sshd_log_level="DEBUG1")
            lab.up(count, say=lambda text: print(text, file=sys.stderr))
            try:
                hosts = [vars(h) for h in lab.hosts()]
                lab_meta: dict[str, Any] = {"hosts": hosts, "key": str(lab.key_file), "known_hosts": str(lab.known_hosts)}
                with tempfile.TemporaryDirectory(prefix="bench-work-") as scratch:
                    work = Path(scratch)
                    files = build(work / "workload", hosts)
                    prepare(work, lab, lab_meta, files, count)
                    bench = Bench(lab, lab_meta, files, work, count, runtime, args.baseline)
                    for tool in tools:  # outside the figures: provision's hosts get the agent's cache
                        if tool.startswith("provision"):
                            bench.converge_untimed(tool)
                    for index in range(args.rounds):
                        order = tools if index % 2 == 0 else list(reversed(tools))
                        print(f"N={count}: round {index + 1}/{args.rounds}: {', '.join(order)}", file=sys.stderr)
                        for tool in order:
                            bench.tool_round(tool, steps, index)
                    for tool in tools:
                        bench.close_connections(tool)
                    results["samples"] += bench.samples
            finally:
                lab.down()
    finally:
        subprocess.run(["provision", "ssh", "close"], capture_output=True, check=False, env=tool_environment(runtime))
        shutil.rmtree(runtime, ignore_errors=True)
    results["summary"] = summarise(results["samples"])
    print_tables(results)
    out = BENCH / "results" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
