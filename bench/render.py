"""Rendering for many hosts: ``provision render`` on a generated inventory.

    python3 bench/render.py [--hosts 1000] [--repeat 3] [--only tmpfs|disk]

Every host gets the motd, fstab, postfix (three transports, sender
selection) and apache roles. Prints the median wall time, files per second
and the peak memory of the render process, writing into tmpfs (provision's
own time) and onto the disk (plus the file system's); writes
bench/results/render-DATE.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TypedDict

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from workload import role_vars  # noqa: E402


def inventory(folder: Path, count: int) -> None:
    hosts = {}
    for number in range(count):
        third, fourth = divmod(number, 250)
        address = f"127.30.{third}.{fourth + 1}"
        extra = [f"127.{31 + k}.{third}.{fourth + 1}" for k in range(3)]
        hosts[f"mx{number:04d}.example.net"] = role_vars(address, extra)
    (folder / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"mail": {"hosts": hosts}}}}))
    (folder / "site.yml").write_text("- hosts: all\n  roles: [motd, fstab, postfix, apache]\n")


class Figures(TypedDict):
    """One target's figures, as printed and written to the results file."""

    files: int
    seconds_median: float
    seconds_all: list[float]
    files_per_second: int
    cpu_seconds_median: float
    peak_memory_mib: float


def measure(inventory_folder: Path, out_root: Path, repeat: int) -> Figures:
    times, cpu, peaks, files = [], [], [], 0
    for number in range(repeat):
        out = out_root / f"out-{number}"
        started = time.monotonic()
        # A fresh child each time, so ru_maxrss of the children is this run's peak.
        code = (
            "import resource, subprocess, sys;"
            "subprocess.run(sys.argv[1:], check=True, capture_output=True);"
            "u = resource.getrusage(resource.RUSAGE_CHILDREN);"
            "print(u.ru_maxrss, u.ru_utime + u.ru_stime)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, "provision", "render", "-i", str(inventory_folder), "--out", str(out)],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.monotonic() - started)
        peak, used = done.stdout.split()
        peaks.append(int(peak) / 1024)
        cpu.append(float(used))
        files = sum(1 for p in out.rglob("*") if p.is_file())
        shutil.rmtree(out)
    seconds = statistics.median(times)
    return {
        "files": files,
        "seconds_median": round(seconds, 2),
        "seconds_all": [round(t, 2) for t in times],
        "files_per_second": round(files / seconds),
        # CPU seconds (user + system, every worker): steadier than wall time on a shared machine.
        "cpu_seconds_median": round(statistics.median(cpu), 2),
        "peak_memory_mib": round(max(peaks), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["tmpfs", "disk"], help="Measure one target only.")
    args = parser.parse_args()
    # The files are written twice: into memory (tmpfs), where the time is
    # provision's own, and onto the disk, where the file system's is added.
    targets = {"tmpfs": Path("/dev/shm"), "disk": Path(tempfile.gettempdir())}
    result: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "cores": os.cpu_count(),
        "command": "python3 bench/render.py " + " ".join(sys.argv[1:]),
        "hosts": args.hosts,
    }
    with tempfile.TemporaryDirectory(prefix="render-bench-") as scratch:
        folder = Path(scratch)
        inventory(folder, args.hosts)
        for label, root in targets.items():
            if not root.is_dir() or (args.only and label != args.only):
                continue
            with tempfile.TemporaryDirectory(prefix="render-bench-out-", dir=root) as out_root:
                figures = measure(folder, Path(out_root), args.repeat)
            result[label] = figures
            print(
                f"{label:>5}: {args.hosts} hosts, {figures['files']} files: {figures['seconds_median']:.2f} s median of "
                f"{args.repeat} ({figures['files_per_second']} files/s, {figures['cpu_seconds_median']:.2f} s CPU), "
                f"peak memory {figures['peak_memory_mib']:.0f} MiB"
            )
    path = BENCH / "results" / f"render-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path}")


if __name__ == "__main__":
    main()
