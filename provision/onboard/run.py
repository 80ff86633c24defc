"""The onboarding steps, in order; each says what it did or why it stopped.

1. inventory: add the host to the group (comments kept) and write its host_vars;
   the edited inventory is loaded and the host compiled from a scratch copy
   first, so a mistake changes no file.
2. ssh: connect and verify the host key.
3. converge: ``provision apply`` for this host.
4. verify: one test message through every transport, confirmed delivered.
5. report: the host's transports, reverse DNS, drift, certificates, queues.
6. checklist: what is left for the admin (PTR and A records to request...).

Every step is idempotent, so a re-run after a failure repeats the finished
steps as no-ops and continues where it stopped; a second onboarding of a
finished host changes nothing.
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from provision.connectors.base import ConnectionSettings
from provision.engine.hosts import ConnectionOptions, HostCall, HostSession, HostStatus, HostTarget, call_hosts
from provision.errors import ConnectionFailure, HostKeyError, InventoryError, Location, ProvisionError
from provision.inventory.options import LoadOptions
from provision.onboard.conflicts import address_conflicts, ssh_setting_problems, winning_ssh_names
from provision.onboard.inventory_edit import InventoryEdit, plan_inventory_edit, write
from provision.onboard.transports import onboard_vars
from provision.roles.compiler import Project, require_site
from provision.views.tables import Column, fitted_table
from provision.views.visible import visible

T = TypeVar("T")
STEPS = ("inventory", "ssh", "converge", "verify", "report", "checklist")


class StepFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


class StepInterrupted(StepFailed):
    """Ctrl-C stopped the step; the message says where the host stopped (provision.engine.interrupt)."""


def _stop_if_interrupted(step: str, host: str, status: HostStatus, errors: list[str]) -> None:
    if status is HostStatus.INTERRUPTED:
        raise StepInterrupted(step, f"{host}: " + "; ".join(errors))


@dataclass
class OnboardOptions:
    host: str
    group: str
    addresses: list[str]
    ssh: dict[str, Any] = field(default_factory=dict)
    verify_to: str | None = None
    verify_timeout: float = 120.0
    dns_servers: list[tuple[str, int]] = field(default_factory=list)
    dry_run: bool = False
    connection: ConnectionOptions = field(default_factory=ConnectionOptions)
    load: LoadOptions = field(default_factory=LoadOptions)
    """The command line's vault and -e: an estate's vaulted group_vars load as for apply."""


def onboard(inventories: list[Path], options: OnboardOptions, console: Console) -> bool:
    """True when every step passed; a failed step raises StepFailed."""
    edit = _step_inventory(inventories, options, console)
    if options.dry_run:
        console.print("[bold]dry run[/]: nothing written, nothing contacted. The next steps would be: " + ", ".join(STEPS[1:]))
        return True
    project = Project.load(inventories, options=options.load)
    _step_ssh(project, options, console)
    _step_converge(project, options, console, inventories)
    deliveries = _step_verify(project, options, console)
    report = _step_report(project, options, console)
    _step_checklist(edit, deliveries, report, console)
    return True


def _on_host(project: Project, options: OnboardOptions, work: Callable[[HostSession], T]) -> HostCall[T]:
    """The work on the host being onboarded, over the one way every command talks to hosts."""
    variables, locations = project.variables(options.host, project.host_roles(options.host))
    (call,) = call_hosts([HostTarget(options.host, variables, locations)], work, forks=1, options=options.connection)
    return call


def _header(console: Console, step: str) -> None:
    console.rule(f"[bold]{STEPS.index(step) + 1}/{len(STEPS)} {step}", align="left")


def _current_vars(inventories: list[Path], host: str, load: LoadOptions) -> dict[str, Any]:
    """The host's inventory variables before the edit (empty for a new host)."""
    inventory = Project.load(inventories, options=load).inventory
    return inventory.host_vars(host) if host in inventory.hosts else {}


def _step_inventory(inventories: list[Path], options: OnboardOptions, console: Console) -> InventoryEdit:
    _header(console, "inventory")
    # A host the inventory already has may set host: (which wins over ansible_host): write what wins.
    ssh = winning_ssh_names(options.ssh, _current_vars(inventories, options.host, options.load))
    host_vars = onboard_vars(options.host, options.addresses, ssh)
    edit = plan_inventory_edit(inventories[0], options.host, options.group, host_vars)
    managed = _validate_in_scratch_copy(inventories, edit, options)
    for path, before, after in (
        (edit.hosts_file, edit.hosts_before, edit.hosts_after),
        (edit.host_vars_file, edit.host_vars_before, edit.host_vars_after),
    ):
        if before == after:
            console.print(Text(f"{path}: unchanged"))
            continue
        diff = difflib.unified_diff((before or "").splitlines(True), after.splitlines(True), str(path), str(path))
        console.print(Text(f"{path}: {'would change' if options.dry_run else 'changed'}"))
        # soft_wrap: a long line stays one line (the terminal folds it), so no line of the diff loses its +/-.
        console.print("".join(diff).rstrip("\n"), markup=False, highlight=False, soft_wrap=True)
    if edit.kept_keys:
        console.print(Text(f"kept as you set them in {edit.host_vars_file.name}: {', '.join(edit.kept_keys)}"))
    if options.dry_run:
        console.print(managed, markup=False, highlight=False, soft_wrap=True)
    else:
        write(edit)
    return edit


def _validate_in_scratch_copy(inventories: list[Path], edit: InventoryEdit, options: OnboardOptions) -> str:
    """Load the edited inventory from a copy and compile the host; what the converge step would manage."""
    folder = edit.hosts_file.parent
    with tempfile.TemporaryDirectory(prefix="provision-onboard-") as scratch:
        copy = Path(scratch) / folder.name
        shutil.copytree(folder, copy, symlinks=True)
        (copy / edit.hosts_file.name).write_text(edit.hosts_after)
        (copy / "host_vars").mkdir(exist_ok=True)
        (copy / "host_vars" / edit.host_vars_file.name).write_text(edit.host_vars_after)
        first = copy if inventories[0].is_dir() else copy / edit.hosts_file.name
        try:
            project = Project.load([first, *inventories[1:]], options=options.load)
        except ProvisionError as exc:
            raise _in_real_folder(exc, copy, folder) from None
        require_site(project)
        if not project.host_roles(options.host).roles:
            raise InventoryError(f"no play in site.yml applies a role to group {options.group!r}", Location(str(folder / "site.yml")))
        if options.addresses and "postfix" not in {role.name for role in project.host_roles(options.host).roles}:
            message = f"--address needs the postfix role, and no play in site.yml applies it to group {options.group!r}"
            raise InventoryError(message, Location(str(folder / "site.yml")))
        try:
            compiled = project.compile(options.host)
        except ProvisionError as exc:
            raise _in_real_folder(exc, copy, folder) from None
        _refuse_conflicts(project, options, compiled.variables, copy, folder, edit)
    roles = ", ".join(role.name for role in project.host_roles(options.host).roles)
    generated = "".join(f" and {kind} files decided on the host" for kind, _ in compiled.desired.generators)
    return f"roles: {roles}; {len(compiled.desired.files)} managed files{generated}:\n" + "\n".join(
        f"  {path}" for path in sorted(compiled.desired.files)
    )


def _refuse_conflicts(
    project: Project, options: OnboardOptions, variables: dict[str, Any], copy: Path, folder: Path, edit: InventoryEdit
) -> None:
    """The connection settings asked for must be the ones that win, and the addresses no other host's."""

    def where(name: str) -> Location | None:
        found = project.inventory.var_location(options.host, name)
        if found is not None and found.file.startswith(str(copy)):
            return Location(str(folder) + found.file[len(str(copy)) :], found.line, found.column)
        return found

    requested = {name: value for name, value in options.ssh.items() if value is not None}
    problems = ssh_setting_problems(requested, variables, where)
    if problems:
        message = "; ".join(problems) + f" over {edit.host_vars_file}: change it where it is set, or leave out the --ssh option"
        raise InventoryError(message)
    others: dict[str, dict[str, Any]] = {}
    for other in project.inventory.hosts:
        assigned = project.host_roles(other)
        if other == options.host or not any("postfix_transports" in role.variables for role in assigned.roles):
            continue
        try:
            others[other] = project.variables(other, assigned)[0]
        except ProvisionError:
            continue  # that host's own mistake; its next run reports it
    conflicts = address_conflicts(options.addresses, others)
    if conflicts:
        raise InventoryError("; ".join(conflicts) + ": an address can be bound by one host only", Location(str(edit.host_vars_file)))


def _in_real_folder(exc: ProvisionError, copy: Path, folder: Path) -> ProvisionError:
    """The same error, naming the user's file rather than the scratch copy's."""
    location = exc.location
    if location is not None and location.file.startswith(str(copy)):
        location = Location(str(folder) + location.file[len(str(copy)) :], location.line, location.column)
    return type(exc)(exc.message.replace(str(copy), str(folder)), location)


def _step_ssh(project: Project, options: OnboardOptions, console: Console) -> None:
    _header(console, "ssh")

    def reach(session: HostSession) -> ConnectionSettings:
        # OpenSSH connects with the first command: run one, so the host key is checked here.
        done = session.connector.run("true", timeout=60)
        if done.exit_code != 0:
            raise ConnectionFailure(f"a trivial command failed on the host (exit {done.exit_code})")
        return session.connector.settings

    call = _on_host(project, options, reach)
    if isinstance(call.exception, HostKeyError):
        hint = "Compare the key's fingerprint with the host's console, then re-run with --accept-new-host-keys"
        raise StepFailed("ssh", f"{call.exception}. {hint}")
    _stop_if_interrupted("ssh", options.host, call.status, call.errors)
    if call.value is None:
        raise StepFailed("ssh", "; ".join(call.errors))
    settings = call.value
    console.print(Text(f"{settings.user or 'root'}@{settings.host}:{settings.port or 22}: connected, host key verified"))


def _step_converge(project: Project, options: OnboardOptions, console: Console, inventories: list[Path]) -> None:
    import time

    from provision import runlog
    from provision.engine.runner import RunOptions, run_hosts
    from provision.roles.compiler import compile_hosts
    from provision.views.results import print_summary

    _header(console, "converge")
    compiled = compile_hosts(project, [options.host], None)
    run, started = RunOptions(connection=options.connection), time.time()
    with console.status(f"converging {escape(options.host)}", spinner="dots"):
        (result,) = run_hosts(compiled, run)
    # An apply like any other: in the run log, so that history and rollback know it.
    record = runlog.RunRecord(run.run_id, "onboard", inventories, options.host, None, False, started)
    try:
        runlog.append(runlog.record(record, [result], {host: entry.secrets for host, entry in compiled.items()}))
    except OSError as exc:
        console.print(Text(f"warning: could not write the run log {runlog.log_file()}: {exc.strerror or exc}", style="yellow"))
    print_summary(console, [result], check=False, show_diff=False)
    _stop_if_interrupted("converge", options.host, result.status, result.errors)
    if result.status.is_error:
        raise StepFailed("converge", result.status + ": " + "; ".join(result.errors))


def _step_verify(project: Project, options: OnboardOptions, console: Console) -> list[Any]:
    from provision.onboard.verify import send_and_confirm

    _header(console, "verify")
    variables = project.variables(options.host, project.host_roles(options.host))[0]
    transports = list(variables.get("postfix_transports") or [])
    if not transports:
        console.print("no transports to verify (no postfix_transports for this host)")
        return []
    if not options.verify_to:
        console.print("[yellow]skipped[/]: give --verify-to ADDRESS to send a test message through every transport")
        return []
    recipient, timeout = options.verify_to, options.verify_timeout
    with console.status(f"sending {len(transports)} test message(s) to {escape(recipient)}", spinner="dots"):
        call = _on_host(project, options, lambda session: send_and_confirm(session.connector, options.host, transports, recipient, timeout))
    _stop_if_interrupted("verify", options.host, call.status, call.errors)
    if call.value is None:
        raise StepFailed("verify", "; ".join(call.errors))
    deliveries, log = call.value
    # Relays and replies are what the next hop said: Text, never markup.
    columns = [Column("transport", 9), Column("bound address", 7), Column("status", 6), Column("relay", 6), Column("reply", 10)]
    rows = [
        [
            Text(delivery.service),
            Text(delivery.address),
            Text("delivered earlier" if delivery.earlier else "delivered", style="green")
            if delivery.delivered
            else Text(delivery.status, style="red"),
            Text(delivery.relay),
            Text(delivery.detail),
        ]
        for delivery in deliveries
    ]
    console.print(fitted_table(console, f"test messages to {options.verify_to}", columns, rows))
    failed = [d for d in deliveries if not d.delivered]
    if failed:
        names = ", ".join(f"{d.service} ({d.status})" for d in failed)
        raise StepFailed("verify", f"not confirmed delivered: {names}; see {log} on the host")
    return deliveries


def _step_report(project: Project, options: OnboardOptions, console: Console) -> Any:
    from provision.report.dns_check import DnsChecker
    from provision.report.gather import gather
    from provision.report.output import print_report

    _header(console, "report")
    label = ", ".join(f"{host}:{port}" for host, port in options.dns_servers) or "system"
    report = gather(project, [options.host], DnsChecker(options.dns_servers or None), label, connection=options.connection)
    (host,) = report.hosts
    _stop_if_interrupted("report", options.host, host.status, host.errors)
    print_report(console, report)
    return report


def _step_checklist(edit: InventoryEdit, deliveries: list[Any], report: Any, console: Console) -> None:
    _header(console, "checklist")
    items: list[str] = []
    (host,) = report.hosts
    for row in host.transports:
        if row.outcome in ("no PTR", "PTR not confirmed", "DNS lookup failed"):
            items.append(f"ask the provider of {row.address} for the PTR record {row.address} → {row.helo_name}")
        if not row.fcrdns:
            items.append(f"publish the DNS record {row.helo_name} {'AAAA' if ':' in row.address else 'A'} {row.address}")
        elif row.outcome == "HELO differs from PTR":
            fix = f"set helo_name to {row.ptr_names[0]} in {edit.host_vars_file}"
            items.append(f"{row.service}: HELO {row.helo_name} differs from the PTR name; {fix}")
    addresses = [row.address for row in host.transports]
    for row in host.transports:
        if row.configured is False:
            items.append(f"{row.service}: {row.address} is not configured on the host: add it (the addresses role does)")
    # Each sending domain's problem names the exact record to publish (SPF, DKIM, DMARC).
    domains = getattr(report, "domains", [])
    items += [f"{domain.domain}: {problem}" for domain in domains for problem in domain.problems]
    if addresses and not domains:
        mechanisms = " ".join(f"ip{6 if ':' in a else 4}:{a}" for a in addresses)
        items.append(f"make sure the SPF records of the domains this host sends for include: {mechanisms}")
    warming = [f"{row.service} ({row.warmup})" for row in host.transports if row.warmup]
    if warming:
        items.append("run 'provision apply' daily (cron) while addresses warm up: " + "; ".join(warming))
    if not deliveries and host.transports:
        items.append("verify delivery: re-run with --verify-to ADDRESS")
    if host.drift:
        items.append(f"drift remains after converging: {', '.join(host.drift)}")
    for number, item in enumerate(items, start=1):
        # Items quote DNS (PTR names, records to publish): control characters made visible.
        console.print(Text(visible(f"  {number}. {item}")), highlight=False)
    if not items:
        console.print("  nothing left: the host is converged, verified and its reverse DNS is in order")


__all__ = ["OnboardOptions", "ProvisionError", "StepFailed", "StepInterrupted", "onboard"]
