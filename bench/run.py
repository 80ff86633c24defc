"""provision, Ansible and pyinfra side by side on the same lab hosts.

    python3 bench/run.py [--hosts 1,5,20] [--repeat 3] [--tools provision,ansible,pyinfra]

For each tool and host count: the first converge, a no-change re-run, a check
run (provision check, ansible-playbook --check, pyinfra --dry) and a run where
one file changed on every host. Wall times are medians over the repetitions;
SSH commands per host are counted from each lab host's sshd (LogLevel DEBUG1:
one "request exec" or "request subsystem" per command). Prints a table and
writes bench/results/bench-DATE.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from tools import ansible_project, provision_project, pyinfra_project  # noqa: E402
from workload import build  # noqa: E402

from provision.lab.lab import Lab  # noqa: E402

STEPS = ("first", "rerun", "check", "one_changed")


def count_commands(lab: Lab, since: str) -> float:
    """Average SSH commands per host since a timestamp, from sshd's own log."""
    total = 0
    for host in lab.hosts():
        logs = subprocess.run(["docker", "logs", "--since", since, host.container], capture_output=True, text=True, check=False)
        text = logs.stdout + logs.stderr
        total += text.count("request exec") + text.count("request subsystem")
    return total / max(1, len(lab.hosts()))


def reset_hosts(lab: Lab, files: dict[str, list[dict[str, str]]]) -> None:
    for host in lab.hosts():
        paths = " ".join(entry["dest"] for entry in files[host.name])
        lab.exec(host.name, ["sh", "-c", f"rm -f {paths}"])


def command_for(tool: str, step: str, work: Path, lab_inventory: Path, forks: int) -> list[str]:
    if tool == "provision":
        verb = "check" if step == "check" else "apply"
        return ["provision", verb, "-i", str(work / "provision"), "-i", str(lab_inventory), "--forks", str(forks), "--json"]
    if tool == "ansible":
        return ["ansible-playbook", "-i", "hosts.ini", "site.yml", *(["--check"] if step == "check" else [])]
    return ["pyinfra", "inventory.py", "deploy.py", "-y", "--parallel", str(forks), *(["--dry"] if step == "check" else [])]


def set_marker(tool: str, work: Path, lab: Lab, lab_meta: dict[str, Any], files: dict[str, Any], marker: str, forks: int) -> None:
    if tool == "provision":
        provision_project(work / "provision", lab.inventory_file, files, marker)
    elif tool == "ansible":
        ansible_project(work / "ansible", lab_meta, files, marker, forks)
    else:
        pyinfra_project(work / "pyinfra", lab_meta, files, marker)


def run_step(tool: str, step: str, work: Path, lab: Lab, forks: int) -> tuple[float, float]:
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 0.5))
    command = command_for(tool, step, work, lab.inventory_file, forks)
    cwd = work / tool if tool != "provision" else work
    env = {**os.environ, "ANSIBLE_CONFIG": str(work / "ansible" / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "default"}
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    seconds = time.monotonic() - started
    expected = (0, 2) if (tool == "provision" and step == "check") else (0,)
    if done.returncode not in expected:
        raise SystemExit(f"{tool} {step} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    time.sleep(1.0)  # let sshd's log reach docker before counting
    return seconds, count_commands(lab, since)


def measure(tool: str, lab: Lab, lab_meta: dict[str, Any], files: dict[str, Any], work: Path, repeat: int, forks: int) -> dict[str, Any]:
    samples: dict[str, list[tuple[float, float]]] = {step: [] for step in STEPS}
    for _ in range(repeat):
        reset_hosts(lab, files)
        set_marker(tool, work, lab, lab_meta, files, "1", forks)
        samples["first"].append(run_step(tool, "first", work, lab, forks))
        samples["rerun"].append(run_step(tool, "rerun", work, lab, forks))
        samples["check"].append(run_step(tool, "check", work, lab, forks))
        set_marker(tool, work, lab, lab_meta, files, "2", forks)
        samples["one_changed"].append(run_step(tool, "one_changed", work, lab, forks))
    return {
        step: {
            "seconds": round(statistics.median(s for s, _ in values), 3),
            "commands_per_host": round(statistics.median(c for _, c in values), 1),
        }
        for step, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="1,5,20", help="host counts, comma-separated (50 if you like)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", default="provision,ansible,pyinfra")
    args = parser.parse_args()
    counts = [int(n) for n in args.hosts.split(",")]
    tools = args.tools.split(",")
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {
            "cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(),
        },
        "command": "python3 bench/run.py " + " ".join(sys.argv[1:]),
        "runs": [],
    }
    for count in counts:
        lab = Lab("bench", root=Path(tempfile.mkdtemp(prefix="bench-lab-")), namespace="provision-bench", sshd_log_level="DEBUG1")
        lab.up(count, say=lambda text: print(text, file=sys.stderr))
        try:
            lab_meta = {"hosts": [vars(h) for h in lab.hosts()], "key": str(lab.key_file), "known_hosts": str(lab.known_hosts)}
            with tempfile.TemporaryDirectory(prefix="bench-work-") as scratch:
                work = Path(scratch)
                files = build(work / "workload", lab_meta["hosts"])
                for tool in ("provision", "ansible", "pyinfra"):
                    (work / tool).mkdir()
                    (work / tool / "templates").symlink_to(work / "workload" / "templates")
                for tool in tools:
                    print(f"N={count}: {tool}...", file=sys.stderr)
                    figures = measure(tool, lab, lab_meta, files, work, args.repeat, count)
                    results["runs"].append({"tool": tool, "hosts": count, "files_per_host": len(next(iter(files.values()))), **figures})
        finally:
            lab.down()
    print_table(results)
    out = BENCH / "results" / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {out}")


def print_table(results: dict[str, Any]) -> None:
    runs = results["runs"]
    print(
        f"\n{results['date']}, {results['machine']['cores']} cores, {results['machine']['memory_gib']} GiB; median wall seconds "
        "(SSH commands per host); ratio = tool / provision"
    )
    header = f"{'hosts':>5} {'tool':<10}" + "".join(f"{step:>24}" for step in STEPS)
    print(header)
    for run in runs:
        base = next((r for r in runs if r["tool"] == "provision" and r["hosts"] == run["hosts"]), None)
        cells = []
        for step in STEPS:
            seconds, commands = run[step]["seconds"], run[step]["commands_per_host"]
            ratio = f" x{seconds / base[step]['seconds']:.1f}" if base and run["tool"] != "provision" else ""
            cells.append(f"{seconds:7.2f}s ({commands:4.0f}){ratio:>6}")
        print(f"{run['hosts']:>5} {run['tool']:<10}" + "".join(f"{c:>24}" for c in cells))


if __name__ == "__main__":
    main()
