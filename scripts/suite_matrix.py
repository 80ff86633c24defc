"""The release matrix (CI runs it after the full suite, which runs on bookworm).

For each suite given (default: bullseye and trixie), on lab hosts of that
Debian release: the engine's lab tests (the agent on that release's Python,
over real SSH), then every role's scenario with ``provision test ROLE
--scenario NAME --suite SUITE`` (create, converge, idempotence, verify,
destroy; a role that declares it cannot run on the release must refuse it
with nothing pushed). Then, when bullseye is among the suites, the upgrade in
place (tests/lab/test_upgrade.py). Each suite's image is built once per
machine and kept.

    python3 scripts/suite_matrix.py [--suite bullseye --suite trixie] [--json FILE]

Prints one line per step as it ends and a summary with durations; exit 1
when any step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The engine's own lab tests: converge, check, repair, host keys, connectors, packages.
ENGINE_TESTS = ["tests/lab/test_example_over_ssh.py", "tests/lab/test_connectors_and_packages.py"]
# A Debian 11 mail host dist-upgraded to 12 in the lab: drift, converge, mail before and after.
UPGRADE_TEST = "tests/lab/test_upgrade.py"


def scenarios(root: Path = ROOT) -> list[tuple[str, str]]:
    """(role, scenario) for every role's own scenarios, then the top-level
    scenarios for the roles they apply that have none of their own."""
    found: list[tuple[str, str]] = []
    for folder in sorted(root.glob("roles/*/molecule/*/")):
        if (folder / "hosts.yml").is_file() or (folder / "hosts").is_file():
            found.append((folder.parent.parent.name, folder.name))
    covered = {role for role, _ in found}
    for folder in sorted(root.glob("molecule/*/")):
        site = folder / "site.yml"
        if not site.is_file():
            continue
        applied = [role if isinstance(role, str) else role["role"] for play in yaml.safe_load(site.read_text()) for role in play["roles"]]
        missing = [role for role in applied if role not in covered]
        if missing:
            found.append((missing[-1], folder.name))  # one run covers every role the scenario applies
            covered.update(applied)
    return found


def step(name: str, command: list[str], env: dict[str, str]) -> dict[str, object]:
    started = time.monotonic()
    print(f"== {name}: {' '.join(command)}", flush=True)
    done = subprocess.run(command, cwd=ROOT, env=env, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = round(time.monotonic() - started, 1)
    refused = "refused as the role declares" in done.stdout
    outcome = "failed" if done.returncode != 0 else ("refused" if refused else "passed")
    tail = "\n".join(done.stdout.strip().splitlines()[-(40 if outcome == "failed" else 3) :])
    print(f"{tail}\n== {name}: {outcome} in {seconds} s", flush=True)
    return {"step": name, "outcome": outcome, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", action="append", choices=["bullseye", "bookworm", "trixie"])
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    parser.add_argument("--no-engine", action="store_true", help="Only the role scenarios.")
    parser.add_argument("--no-upgrade", action="store_true", help="Skip the bullseye -> bookworm upgrade in place.")
    arguments = parser.parse_args()
    suites = arguments.suite or ["bullseye", "trixie"]
    results: list[dict[str, object]] = []
    started = time.monotonic()
    for suite in suites:
        env = {**os.environ, "PROVISION_TEST_SUITE": suite}
        if not arguments.no_engine:
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ENGINE_TESTS]
            results.append({"suite": suite, **step(f"{suite} engine lab tests", command, env)})
        for role, name in scenarios():
            command = ["provision", "test", role, "--scenario", name, "--suite", suite]
            results.append({"suite": suite, **step(f"{suite} {role}/{name}", command, env)})
    if "bullseye" in suites and not arguments.no_upgrade:
        command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", UPGRADE_TEST]
        env = {**os.environ, "PROVISION_UPGRADE_TEST": "1"}
        results.append({"suite": "bullseye -> bookworm", **step("upgrade in place, bullseye -> bookworm", command, env)})
    total = round(time.monotonic() - started, 1)
    print("\nrelease matrix:")
    for entry in results:
        print(f"  {entry['step']:<40} {entry['outcome']:<8} {entry['seconds']:>7} s")
    print(f"  {'total':<40} {'':<8} {total:>7} s")
    if arguments.json:
        arguments.json.write_text(json.dumps({"results": results, "seconds": total}, indent=2))
    return 1 if any(entry["outcome"] == "failed" for entry in results) else 0


if __name__ == "__main__":
    sys.exit(main())
