"""``provision test ROLE``: molecule's lifecycle without Ansible.

A scenario is a folder, ``roles/<role>/molecule/<name>/`` or
``molecule/<name>/``, holding an ordinary inventory (``hosts.yml`` naming
the test hosts, ``group_vars/``, ``host_vars/``, ``site.yml``) and testinfra
tests (``test_*.py``, or a ``tests/`` folder). The lab supplies one real
Debian host per inventory host; the steps are molecule's: create, converge,
idempotence (a second converge must change nothing), verify, destroy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from provision.bundled import checkout_dir, roles_dir
from provision.engine.converge import HostResult
from provision.engine.runner import RunOptions, run_hosts
from provision.errors import ProvisionError
from provision.inventory import find_inventory_file
from provision.lab.image import DEFAULT_SUITE, check_suite
from provision.roles.compiler import Project, compile_hosts, require_site

Say = Callable[[str], None]
# Scenario labs are apart from a developer's own labs; PROVISION_LAB_NAMESPACE
# sets another prefix (two test runs on one machine, say).
DEFAULT_NAMESPACE = "provision-test"


class ScenarioFailed(ProvisionError):
    """A lifecycle step failed (the message says which and why)."""


@dataclass
class Scenario:
    role: str
    name: str
    directory: Path
    roles_path: list[Path] = field(default_factory=list)
    """Where the scenario's roles live beyond the usual places (as molecule adds the role's parent)."""

    def project(self, *extra: Path) -> Project:
        # The scenario's inventory file, not its folder: a folder source would read
        # molecule.yml, converge.yml and tests/ as inventories too, as Ansible would.
        return Project.load([find_inventory_file(self.directory), *extra], roles_path=self.roles_path)


def find_scenario(role: str, name: str, base: Path | None = None) -> Scenario:
    """The role's own scenario (the current project's, then the bundled role's),
    else a project-wide ``molecule/NAME`` whose site.yml applies the role."""
    here = base or Path.cwd()
    candidates = [here / "roles" / role / "molecule" / name, here / "molecule" / name, roles_dir() / role / "molecule" / name]
    repository = checkout_dir()
    if repository is not None:
        candidates.append(repository / "molecule" / name)
    candidates = list(dict.fromkeys(candidates))
    passed_over: list[str] = []
    for folder in candidates:
        if not ((folder / "hosts.yml").is_file() or (folder / "hosts").is_file()):
            continue
        beside_role = folder.parent.parent.parent if folder.parent.name == "molecule" and folder.parent.parent.name == role else None
        scenario = Scenario(role, name, folder, [beside_role] if beside_role else [])
        # A project-wide scenario serves the roles it applies; another role's own scenario is looked for further on.
        if beside_role is None and role not in applied_roles(scenario):
            passed_over.append(f"{folder} (applies {', '.join(sorted(applied_roles(scenario))) or 'no role'})")
            continue
        return scenario
    looked = ", ".join(str(c) for c in candidates)
    also = f"; passed over {'; '.join(passed_over)}" if passed_over else ""
    raise ProvisionError(f"no scenario {name!r} for role {role!r} (looked for an inventory in: {looked}{also})")


def applied_roles(scenario: Scenario) -> set[str]:
    project = scenario.project()
    return {r.name for host in project.select(None) for r in project.host_roles(host).roles} if project.plays else set()


def lab_name(scenario: Scenario, suite: str = DEFAULT_SUITE) -> str:
    return re.sub(r"[^a-z0-9-]", "-", f"{scenario.role}-{scenario.name}-{suite}".lower())


def _test_files(folder: Path) -> list[Path]:
    tests = sorted(folder.glob("test_*.py"))
    if (folder / "tests").is_dir():
        tests += sorted((folder / "tests").glob("test_*.py"))
    return tests


def _changes(results: list[HostResult]) -> list[str]:
    lines = []
    for result in results:
        lines += [f"{result.host}: {f.path} ({', '.join(f.reasons)})" for f in result.files]
        lines += [f"{result.host}: package {p}" for p in result.packages]
        lines += [f"{result.host}: service {s}" for s in result.services]
        lines += [f"{result.host}: directory {d}" for d in result.directories]
    return lines


def _failures(results: list[HostResult]) -> list[str]:
    return [f"{r.host}: {r.status}: {'; '.join(r.errors)}" for r in results if r.status in ("failed", "unreachable")]


def run_scenario(scenario: Scenario, keep: bool, say: Say, suite: str = DEFAULT_SUITE, name: str | None = None) -> str:
    """Molecule's steps for one scenario on a lab named ``name`` (default ROLE-SCENARIO[-SUITE]), every
    host from ``suite``'s image: "passed", or "refused" when the role declares it cannot run on the suite.
    The lab is removed unless ``keep``."""
    from provision.lab.lab import Lab

    project = scenario.project()
    require_site(project)
    hosts = project.select(None)
    assigned = applied_roles(scenario)
    if scenario.role not in assigned:
        raise ProvisionError(
            f"scenario {scenario.directory} does not apply role {scenario.role!r} (it applies: {', '.join(sorted(assigned))})"
        )
    check_suite(suite)
    lab = Lab(name or lab_name(scenario, suite), namespace=os.environ.get("PROVISION_LAB_NAMESPACE", DEFAULT_NAMESPACE))
    try:
        say(f"create: {len(hosts)} {suite} lab host(s) for {scenario.directory}")
        lab.up(names=hosts, say=say, suites=suite)
        converged = _converge(scenario, lab, "converge", say)
        if converged and all(r.refused for r in converged):
            # The role declares that it cannot run on this release: refused on
            # every host after its probe, with nothing pushed. That is a pass.
            say(f"refused: {suite} is not supported by this role, as it declares:\n  " + "\n  ".join(_failures(converged)))
            return "refused as the role declares (nothing pushed)"
        if failures := _failures(converged):
            raise ScenarioFailed("converge failed:\n  " + "\n  ".join(failures))
        again = _converge(scenario, lab, "idempotence", say)
        if failures := _failures(again):
            raise ScenarioFailed("idempotence run failed:\n  " + "\n  ".join(failures))
        if changes := _changes(again):
            raise ScenarioFailed("idempotence: the second converge changed:\n  " + "\n  ".join(changes))
        _verify(scenario, lab, say)
        return "passed"
    finally:
        if keep:
            say(f"kept: the lab is still up (provision lab status --name {lab.name}; inventory {lab.inventory_file})")
        else:
            removed = lab.down()
            say(f"destroy: {len(removed)} removed ({', '.join(r for r in removed if r.startswith('container'))})")


def _converge(scenario: Scenario, lab: object, step: str, say: Say) -> list[HostResult]:
    from provision.lab.lab import Lab

    assert isinstance(lab, Lab)
    project = scenario.project(lab.inventory_file)
    compiled = compile_hosts(project, project.select(None), None)
    results = run_hosts(compiled, RunOptions(forks=20))
    changed = sum(r.status == "changed" for r in results)
    say(f"{step}: {len(results)} host(s), {changed} changed")
    return results


def _verify(scenario: Scenario, lab: object, say: Say) -> None:
    from provision.lab.lab import Lab

    assert isinstance(lab, Lab)
    tests = _test_files(scenario.directory)
    if not tests:
        say("verify: no test_*.py in the scenario, skipped")
        return
    backends = ",".join(f"docker://{host.container}" for host in lab.hosts())
    say(f"verify: {len(tests)} testinfra file(s) against {backends}")
    env = {**os.environ, "PROVISION_SCENARIO_INVENTORY": str(lab.inventory_file)}
    # Nothing written into the scenario's folder, which may be a read-only install: no cache,
    # and no .benchmarks folder (pytest-benchmark, where installed, makes one in the cwd).
    plugins = ["-p", "no:cacheprovider", "-p", "no:benchmark"]
    command = [sys.executable, "-m", "pytest", "-q", *plugins, f"--hosts={backends}", *map(str, tests)]
    done = subprocess.run(command, env=env, check=False, cwd=scenario.directory)
    if done.returncode != 0:
        raise ScenarioFailed(f"verify: testinfra tests failed (exit {done.returncode})")
