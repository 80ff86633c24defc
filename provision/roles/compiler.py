"""A project: an inventory, its site.yml and roles, compiled to desired state.

Compiling is pure controller work: it reads files and renders templates,
and never touches the network. Every selected host is compiled before any
host is contacted, so a mistake in any of them stops the run with nothing
pushed anywhere.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision import __version__
from provision.connectors import login_user, overlay, settings_from_vars
from provision.errors import InventoryError, Location, PatternError, ProvisionError, TemplateError, VariableError
from provision.inventory import Inventory, load_inventory, select_hosts
from provision.inventory.options import LoadOptions
from provision.inventory.vault import Vault, is_encrypted, reveal_tree
from provision.roles.facts import HostFacts, PendingFacts, version_test
from provision.roles.hostvars import NearMisses, check_role_variables, resolve_templates, secret_names, secret_values
from provision.roles.loader import (
    DirectoryResource,
    FileResource,
    HandlerResource,
    RequireResource,
    Role,
    RoleLoader,
    ValidatorResource,
    role_search_path,
)
from provision.roles.render import Renderer
from provision.roles.site import Play, RoleUse, find_site_file, load_site
from provision.state import DesiredDirectory, DesiredFile, DesiredService, DesiredState, Handler, Validator

MANAGED_NOTE = "Managed by provision (role {role}): local changes will be overwritten."


class VersionRefused(VariableError):
    """A role or variable needs a newer package than the host has (see ``requires``)."""


@dataclass
class CompiledHost:
    desired: DesiredState
    secrets: list[str]
    variables: dict[str, Any]
    needs_facts: bool = False
    """Compiled before the probe, the host used ``host_facts`` or its roles have
    ``requires``: it is compiled again with its facts once the probe answers."""
    refine: Callable[[HostFacts], CompiledHost] | None = field(default=None, repr=False, compare=False)
    """Compiles this host again with its facts (set by ``compile_hosts``)."""
    locations: dict[str, Location | None] = field(default_factory=dict)
    """Where each variable was set (an error about a connection variable names its line)."""
    warnings: list[CompileWarning] = field(default_factory=list)


@dataclass(frozen=True)
class CompileWarning:
    """Something a user most likely wants to know, that does not stop the run."""

    message: str
    location: Location | None = None

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


@dataclass
class HostRoles:
    roles: list[Role] = field(default_factory=list)
    uses: list[RoleUse] = field(default_factory=list)
    play_vars: dict[str, Any] = field(default_factory=dict)


class Project:
    def __init__(
        self, inventory: Inventory, plays: list[Play], loader: RoleLoader, site_path: Path | None, options: LoadOptions | None = None
    ) -> None:
        self.inventory = inventory
        self.options = options or LoadOptions()
        self.plays = plays
        self.loader = loader
        self.site_path = site_path
        self._renderers: dict[str, Renderer] = {}
        self._play_hosts: dict[int, set[str]] = {}
        self._groups: dict[str, list[str]] | None = None
        self._variable_renderer = Renderer([], immutable=True)
        self._near_misses = NearMisses()
        self._secret_names: dict[tuple[str, ...], frozenset[str]] = {}

    @classmethod
    def load(cls, inventory_path: Path | list[Path], roles_path: list[Path] | None = None, options: LoadOptions | None = None) -> Project:
        """``roles_path`` is searched before the usual places (a scenario's own role);
        ``options`` are the command line's vault, extra vars and connection defaults."""
        options = options or LoadOptions()
        inventory = load_inventory(inventory_path, options.vault, options.extra_vars)
        site_path = find_site_file(inventory.directory)
        plays = load_site(site_path) if site_path else []
        search = [*(roles_path or []), *role_search_path(inventory.directory)]
        return cls(inventory, plays, RoleLoader(search), site_path, options)

    def select(self, limit: str | None) -> list[str]:
        """The hosts a run touches: ``--limit`` applied to all hosts, in the
        inventory's order (as ``ansible all --limit L`` orders them)."""
        wanted = set(select_hosts(self.inventory, limit or "all"))
        hosts = [host for host in select_hosts(self.inventory, "all") if host in wanted]
        if not hosts:
            raise PatternError(f"the pattern {limit or 'all'!r} matches no host in {self.inventory.source}")
        return hosts

    def host_roles(self, host: str) -> HostRoles:
        result = HostRoles()
        seen: set[str] = set()
        for play in self.plays:
            if id(play) not in self._play_hosts:
                self._play_hosts[id(play)] = set(select_hosts(self.inventory, play.hosts))
            if host not in self._play_hosts[id(play)]:
                continue
            result.play_vars.update(play.vars)
            for use in play.roles:
                if use.name in seen:
                    continue
                seen.add(use.name)
                result.roles.append(self.loader.get(use.name, use.location))
                result.uses.append(use)
        return result

    def renderer(self, role: Role) -> Renderer:
        if role.name not in self._renderers:
            # A role's own templates first, then the inventory's templates/ (a user's own, such as motd_template).
            self._renderers[role.name] = Renderer([role.templates_dir, *role.template_dirs, self.inventory.directory / "templates"])
        return self._renderers[role.name]

    def variables(self, host: str, assigned: HostRoles, host_facts: Any = None) -> tuple[dict[str, Any], dict[str, Location | None]]:
        """Merged, resolved variables of a host, and where each was set."""
        values: dict[str, Any] = {}
        where: dict[str, Location | None] = {}
        for role in assigned.roles:
            role_file = Location(str(role.path / "role.yml"))
            for name, value in role.defaults().items():
                values[name] = value
                where[name] = role_file
        # -u, --private-key, -b: below the inventory, as in Ansible. Each layer
        # goes on with ``overlay``: ``-e ansible_user=x`` beats the inventory's
        # ``user:``, and host_vars' ``ansible_user`` beats group_vars' ``user:``.
        overlay(values, self.options.connection_defaults)
        layers = self.inventory.var_layers(host)
        taken: dict[str, str] = {}  # names a higher layer set by another name of the setting
        for layer in layers:
            taken = {name: winner for name, winner in taken.items() if name not in layer}
            taken.update(overlay(values, layer))
        for name in {**{name: None for layer in layers for name in layer}, **dict.fromkeys(taken)}:
            where[name] = self.inventory.var_location(host, taken.get(name, name))
        site = Location(str(self.site_path)) if self.site_path else None
        for source in [assigned.play_vars, *(use.vars for use in assigned.uses)]:
            where.update(dict.fromkeys([*source, *overlay(values, source)], site))
        # -e: above everything, as in Ansible.
        for name, winner in overlay(values, self.options.extra_vars).items():
            where[name] = self.options.extra_var_locations.get(winner)
        where.update(self.options.extra_var_locations)
        # Vaulted values are decrypted here, where they are needed; without the
        # password this is an error naming the value's file and line.
        values = {name: reveal_tree(value, self.options.vault) for name, value in values.items()}
        magic = self.magic_variables(host)
        magic["host_facts"] = PendingFacts() if host_facts is None else host_facts
        values.update(magic)
        roles = tuple(role.name for role in assigned.roles)
        if roles not in self._secret_names:
            self._secret_names[roles] = secret_names(assigned.roles)
        return resolve_templates(values, self._variable_renderer, where, frozenset(magic), self._secret_names[roles]), where

    def groups_map(self) -> dict[str, list[str]]:
        if self._groups is None:
            self._groups = {name: select_hosts(self.inventory, name) for name in self.inventory.groups}
        return self._groups

    def magic_variables(self, host: str) -> dict[str, Any]:
        return {
            "inventory_hostname": host,
            "inventory_hostname_short": host.split(".")[0],
            "group_names": self.inventory.group_names(host),
            "groups": self.groups_map(),
        }

    def compile(self, host: str, tags: set[str] | None = None, facts: HostFacts | None = None) -> CompiledHost:
        """The host's desired state, connection settings and secrets to mask.

        Without ``facts`` (before the host is contacted) templates see a
        placeholder ``host_facts``, checks that use it wait, and ``requires``
        are not judged: the result says whether the host needs compiling again
        with its facts (``needs_facts``)."""
        assigned = self.host_roles(host)
        values, where = self.variables(host, assigned, None if facts is None else facts.for_templates())
        pending = values["host_facts"] if facts is None else None
        desired, secrets = self._desired(host, assigned, values, where, tags, facts)
        values = {name: value for name, value in values.items() if name != "host_facts"}
        if isinstance(pending, PendingFacts):  # the versions templates look at come with the probe
            desired.version_packages += sorted(pending.packages_used - set(desired.version_packages))
        used_facts = isinstance(pending, PendingFacts) and pending.uses > 0
        needs_facts = used_facts or any(role.requires for role in assigned.roles)
        refine = functools.partial(self.compile, host, tags) if needs_facts and facts is None else None
        return CompiledHost(desired, secrets, values, needs_facts, refine, where, self._typos(host, assigned, where))

    def _typos(self, host: str, assigned: HostRoles, where: dict[str, Location | None]) -> list[CompileWarning]:
        """A "did you mean" for each variable set for the host that is one edit away from one of its roles'."""
        found = []
        names = [*self.inventory.host_vars(host), *assigned.play_vars, *(name for use in assigned.uses for name in use.vars)]
        for name in dict.fromkeys(names):
            suggestion = self._near_misses.suggestion(name, assigned.roles)
            if suggestion is not None:
                roles = ", ".join(role.name for role in assigned.roles if suggestion in role.variables)
                found.append(
                    CompileWarning(
                        f"variable {name!r} is not a variable of any role of the host; did you mean {suggestion!r} (role {roles})?",
                        where.get(name),
                    )
                )
        return found

    def _desired(
        self,
        host: str,
        assigned: HostRoles,
        values: dict[str, Any],
        where: dict[str, Location | None],
        tags: set[str] | None,
        facts: HostFacts | None = None,
    ) -> tuple[DesiredState, list[str]]:
        declared = {name for role in assigned.roles for name in role.variables}
        desired = DesiredState(host=host, roles=[r.name for r in assigned.roles])
        # Roles that could lock the operator out (sshd) check their settings against this account.
        connection_user = login_user(settings_from_vars(host, values))
        for role, use in zip(assigned.roles, assigned.uses, strict=True):
            checked = check_role_variables(role, values, where, declared)
            context = {
                **values,
                **checked,
                "provision_managed": MANAGED_NOTE.format(role=role.name),
                "provision_version": __version__,
                "provision_roles": [r.name for r in assigned.roles],
                "provision_connection_user": connection_user,
                "inventory_dir": str(self.inventory.directory),
            }
            for name, expression in role.vars.items():
                if name not in self.options.extra_vars:  # -e wins over a role's own vars too
                    context[name] = _computed(self.renderer(role), expression, context, f"vars of role {role.name}")
            _check_rules(role, self.renderer(role), context, where)
            _check_requires(host, role, self.renderer(role), context, where, facts, desired)
            role_tags = {role.name, *role.tags, *use.tags}
            _add_role(desired, role, self.renderer(role), context, role_tags, _Tags(tags, self.options.skip_tags), self.options.vault)
        secrets = secret_values(assigned.roles, values, skip=frozenset(self.magic_variables(host)))
        return _mark_secrets(desired, secrets), secrets


@dataclass(frozen=True)
class _Tags:
    wanted: set[str] | None
    skipped: frozenset[str]

    def selected(self, resource_tags: set[str]) -> bool:
        """--tags keeps what has one of its tags, then --skip-tags drops what has one of its own.

        Ansible's special tags mean what they mean there: ``always`` is kept
        whatever --tags says (only --skip-tags drops it), ``never`` is left
        out unless --tags names one of its tags (or ``never``), and
        ``--tags all`` is everything but ``never``.
        """
        if resource_tags & self.skipped:
            return False
        if "never" in resource_tags:
            return self.wanted is not None and bool(resource_tags & self.wanted)
        if "always" in resource_tags or self.wanted is None or "all" in self.wanted:
            return True
        return bool(resource_tags & self.wanted)


def _items(
    resource: FileResource | DirectoryResource | HandlerResource | ValidatorResource | RequireResource,
    renderer: Renderer,
    context: dict[str, Any],
    where: str,
) -> list[dict[str, Any]]:
    """The contexts a resource renders in: one, or one per loop item."""
    if resource.loop is None:
        contexts = [context]
    else:
        items = resource.loop if isinstance(resource.loop, list) else renderer.evaluate(resource.loop, context, where)
        if not isinstance(items, (list, tuple)):
            raise TemplateError(f"'loop' in {where} must give a list, got {type(items).__name__}")
        contexts = [{**context, resource.loop_var: item} for item in items]
    if resource.when is None:
        return contexts
    return [c for c in contexts if renderer.evaluate(resource.when, c, where)]


def _mode(text: str, where: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise TemplateError(f"mode {text!r} in {where} is not an octal number") from None


def _add_role(
    desired: DesiredState, role: Role, renderer: Renderer, context: dict[str, Any], role_tags: set[str], tags: _Tags, vault: Vault | None
) -> None:
    where = f"role {role.name}"
    for directory in role.directories:
        if not tags.selected(role_tags | set(directory.tags)):
            continue
        for item in _items(directory, renderer, context, where):
            path = renderer.render_string(directory.path, item, where)
            mode_text = renderer.render_string(directory.mode, item, where)
            mode = None if mode_text == "keep" else _mode(mode_text, where)
            owner, group = (renderer.render_string(text, item, where) for text in (directory.owner, directory.group))
            desired.directories[path] = DesiredDirectory(path, mode, owner, group, role.name)
    for resource in role.files:
        if not tags.selected(role_tags | set(resource.tags)):
            continue
        for item in _items(resource, renderer, context, where):
            dest = renderer.render_string(resource.dest, item, where)
            if not dest.startswith("/"):
                raise TemplateError(f"file destination {dest!r} in {where} must be an absolute path", resource.location)
            if dest in desired.files:
                raise TemplateError(f"{dest} is declared twice (roles {desired.files[dest].role} and {role.name})", resource.location)
            content, vaulted = _content(resource, role, renderer, item, where, vault, desired.host, dest)
            desired.files[dest] = DesiredFile(
                path=dest,
                content=content,
                mode=_mode(renderer.render_string(resource.mode, item, where), where),
                owner=renderer.render_string(resource.owner, item, where),
                group=renderer.render_string(resource.group, item, where),
                role=role.name,
                source=resource.template or resource.src or resource.build or "content",
                secret=resource.secret or vaulted,
                validate=renderer.render_string(resource.validate, item, where) if resource.validate else None,
                notify=tuple(renderer.render_string(n, item, where) for n in resource.notify),
                merge=_merge(resource, renderer, item, where),
                change_note=renderer.render_string(resource.change_note, item, where) or None if resource.change_note else None,
                login_check=role.login_check,
            )
    if not tags.selected(role_tags):
        return
    for package in role.packages:
        # A package may be templated; one that renders empty is not wanted on this host.
        name = renderer.render_string(package, context, where).strip() if "{{" in package else package
        if name and name not in desired.packages:
            desired.packages.append(name)
    for service in role.services:
        if service.when is None or renderer.evaluate(service.when, context, where):
            ports = _ports(service.verify["ports"], renderer, context, f"verify of service {service.name} in {where}")
            desired.services.append(
                DesiredService(service.name, service.state, service.enabled, role.name, service.verify["settle"], ports)
            )
    for handler in role.handlers:
        for item in _items(handler, renderer, context, where):
            name = renderer.render_string(handler.name, item, where)
            desired.handlers[name] = Handler(
                name,
                renderer.render_string(handler.command, item, where),
                role.name,
                renderer.render_string(handler.check, item, where) if handler.check else None,
                tuple(renderer.render_string(other, item, where) for other in handler.supersedes),
            )
    for path, entry in desired.files.items():
        for name in entry.notify if entry.role == role.name else ():
            if name not in desired.handlers:
                raise TemplateError(f"{path} in {where} notifies {name!r}, which is not a handler of this host")
    for generator in role.generate:
        data = generator["data"]
        desired.generators.append((str(generator["kind"]), renderer.evaluate(data, context, where) if isinstance(data, str) else data))
    for name, command in role.facts.items():
        desired.facts[name] = renderer.render_string(command, context, where)
    for validator in role.validators:
        for item in _items(validator, renderer, context, where):
            files = tuple(renderer.render_string(f, item, where) for f in validator.files)
            desired.validators.append(
                Validator(
                    renderer.render_string(validator.command, item, where),
                    files,
                    role.name,
                    renderer.render_string(validator.description, item, where),
                )
            )


def _ports(ports: str | list[str], renderer: Renderer, context: dict[str, Any], where: str) -> tuple[str, ...]:
    """A service's ports to check: each "address:port" (or a bare port), from a list or an expression giving one."""
    values = (
        renderer.evaluate(ports, context, where) if isinstance(ports, str) else [renderer.render_string(p, context, where) for p in ports]
    )
    if not isinstance(values, (list, tuple)):
        raise TemplateError(f"ports in {where} must give a list of address:port, got {type(values).__name__}")
    found = []
    for value in values:
        text = str(value)
        port = text.rpartition(":")[2]
        if not port.isdigit() or int(port) > 65535:
            raise TemplateError(f"ports in {where}: {text!r} is not address:port")
        found.append(text)
    return tuple(found)


def _computed(renderer: Renderer, expression: Any, context: dict[str, Any], where: str) -> Any:
    if isinstance(expression, str) and expression.strip().startswith("{{") and expression.strip().endswith("}}"):
        return renderer.evaluate(expression, context, where)
    if isinstance(expression, str):
        return renderer.render_string(expression, context, where)
    return expression


def _check_rules(role: Role, renderer: Renderer, context: dict[str, Any], where: dict[str, Location | None]) -> None:
    """The role's cross-variable rules; a broken one names the variable's file.
    A rule that looks at ``host_facts`` waits for them (see ``compile``)."""
    pending = context.get("host_facts")
    for rule in role.checks:
        uses = pending.uses if isinstance(pending, PendingFacts) else 0
        holds = renderer.evaluate(rule.that, context, f"a check of role {role.name}")
        if isinstance(pending, PendingFacts) and pending.uses > uses:
            continue
        if not holds:
            location = where.get(rule.variable) if rule.variable else None
            message = renderer.render_string(rule.message, context, f"a check of role {role.name}")
            prefix = f"variable {rule.variable}: " if rule.variable else f"role {role.name}: "
            raise VariableError(prefix + message, location or Location(str(role.path / "role.yml")))


def _check_requires(
    host: str,
    role: Role,
    renderer: Renderer,
    context: dict[str, Any],
    where: dict[str, Location | None],
    facts: HostFacts | None,
    desired: DesiredState,
) -> None:
    """Refuse a feature the host's package version lacks (only with facts: after the probe)."""
    for requirement in role.requires:
        if requirement.package not in desired.version_packages:
            desired.version_packages.append(requirement.package)
        if facts is None:
            continue
        what = f"a requires entry of role {role.name}"
        for item in _items(requirement, renderer, context, what):
            have = facts.version(requirement.package)
            needed = renderer.render_string(requirement.version, item, what)
            if have is not None and version_test(have, needed, ">="):
                continue
            feature = renderer.render_string(requirement.feature, item, what)
            message = _refusal(host, role, requirement, item, facts, have, needed, feature)
            raise VersionRefused(message, _refusal_location(role, requirement, where))


def _refusal(
    host: str,
    role: Role,
    requirement: RequireResource,
    context: dict[str, Any],
    facts: HostFacts,
    have: str | None,
    needed: str,
    feature: str,
) -> str:
    package = requirement.package
    has = f"has {package} {have}" if have is not None else f"has no {package} (not installed, and apt knows no version of it)"
    if requirement.variable is not None:
        value = context.get(requirement.variable)
        asked = f"variable {requirement.variable}" + (f" = {value!r}" if isinstance(value, (str, int, float)) else "")
    else:
        asked = f"role {role.name}"
    because = f" ({feature})" if feature else ""
    return f"host {host} ({facts.release()}) {has}: {asked} needs {package} {needed} or later{because}"


def _refusal_location(role: Role, requirement: RequireResource, where: dict[str, Location | None]) -> Location:
    found = where.get(requirement.variable) if requirement.variable else None
    return found or requirement.location or Location(str(role.path / "role.yml"))


def _merge(resource: FileResource, renderer: Renderer, context: dict[str, Any], where: str) -> tuple[str, Any] | None:
    if resource.merge is None:
        return None
    data = resource.merge["data"]
    return str(resource.merge["kind"]), renderer.evaluate(data, context, where) if isinstance(data, str) else data


def _content(
    resource: FileResource, role: Role, renderer: Renderer, context: dict[str, Any], where: str, vault: Vault | None, host: str, dest: str
) -> tuple[bytes, bool]:
    """The file's content, and whether it came out of a vault (then it is secret); refused when larger than its ``max_size``."""
    which = f"(role {role.name}, file {dest}, host {host})"
    if resource.merge is not None:
        from provision.roles.mergers import MERGERS

        kind, data = _merge(resource, renderer, context, where) or ("", None)
        return MERGERS[kind](b"", data), False  # against an empty file until the probe tells what is there
    if resource.template is not None:
        name = renderer.render_string(resource.template, context, where) if "{{" in resource.template else resource.template
        try:
            content = renderer.render_template(name, context).encode()
        except TemplateError as exc:
            if exc.location is not None:
                raise
            raise TemplateError(f"{exc.message} {which}", resource.location) from None
        return _limited(content, resource, which), False
    if resource.content is not None:
        return _limited(renderer.render_string(str(resource.content), context, where).encode(), resource, which), False
    if resource.build is not None:
        from provision.roles.builders import build

        return _limited(build(resource.build), resource, which), False
    source = role.files_dir / str(resource.src)
    try:
        if source.stat().st_size > resource.max_size:  # not read into memory at all
            _too_large(source.stat().st_size, resource, which)
        data = source.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"cannot read {source}: {exc.strerror} {which}", resource.location) from None
    if is_encrypted(data):  # a file ansible-vault encrypted goes to the host decrypted, as Ansible's copy does
        return _limited((vault or Vault()).decrypt(data.decode("ascii", "replace"), Location(str(source))), resource, which), True
    return data, False


def _limited(content: bytes, resource: FileResource, which: str) -> bytes:
    if len(content) > resource.max_size:
        _too_large(len(content), resource, which)
    return content


def _too_large(size: int, resource: FileResource, which: str) -> None:
    raise ProvisionError(
        f"the file would hold {_mib(size)}, more than its limit of {_mib(resource.max_size)} {which}; "
        "if that is meant, raise max_size in the file entry",
        resource.location,
    )


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def _mark_secrets(desired: DesiredState, secrets: list[str]) -> DesiredState:
    """A file that contains a secret variable's value is secret itself."""
    if not secrets:
        return desired
    encoded = [s.encode() for s in secrets]
    for path, entry in desired.files.items():
        if not entry.secret and any(s in entry.content for s in encoded):
            desired.files[path] = DesiredFile(**{**entry.__dict__, "secret": True})
    return desired


def compile_warnings(compiled: dict[str, CompiledHost]) -> list[str]:
    """Every warning once, with the hosts it concerns (a group_vars typo is one line, not one per host)."""
    hosts: dict[str, list[str]] = {}
    for host, entry in compiled.items():
        for warning in entry.warnings:
            hosts.setdefault(str(warning), []).append(host)
    lines = []
    for text, names in hosts.items():
        who = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more hosts"
        lines.append(f"{text} [{who}]")
    return lines


def require_site(project: Project) -> None:
    if not project.plays:
        where = Location(str(project.inventory.directory / "site.yml"))
        raise InventoryError("no site.yml beside the inventory: nothing maps hosts to roles", where)


# Below this many hosts a worker process costs more than it saves.
PARALLEL_COMPILE_MIN_HOSTS = 200
_CHUNK = 50
_forked: tuple[Project, set[str] | None, HostFacts | None] | None = None


def compile_hosts(project: Project, hosts: list[str], tags: set[str] | None, facts: HostFacts | None = None) -> dict[str, CompiledHost]:
    """Every host's desired state, in ``hosts`` order; the first mistake raises.
    With ``facts`` every host is compiled as a host with those facts (render).

    Compiling is pure CPU work, so a large fleet is compiled by one forked
    worker per core (the loaded project is inherited, not re-read).
    """
    compiled = _compile_all(project, hosts, tags, facts)
    for host, entry in compiled.items():
        if entry.needs_facts and facts is None and entry.refine is None:  # assumed facts (render) are final
            entry.refine = functools.partial(project.compile, host, tags)
    return compiled


def _compile_all(project: Project, hosts: list[str], tags: set[str] | None, facts: HostFacts | None) -> dict[str, CompiledHost]:
    workers = min(os.cpu_count() or 1, len(hosts) // _CHUNK)
    if len(hosts) < PARALLEL_COMPILE_MIN_HOSTS or workers < 2:
        return {host: project.compile(host, tags, facts) for host in hosts}
    global _forked
    _forked = (project, tags, facts)
    try:
        chunks = [hosts[start : start + _CHUNK] for start in range(0, len(hosts), _CHUNK)]
        # Imported here: only large fleets compile in worker processes.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            compiled: dict[str, CompiledHost] = {}
            for part in pool.map(_compile_chunk, chunks):
                compiled.update(part)
            return compiled
    finally:
        _forked = None


def _compile_chunk(hosts: list[str]) -> dict[str, CompiledHost]:
    assert _forked is not None, "only called in a forked worker"
    project, tags, facts = _forked
    compiled = {host: project.compile(host, tags, facts) for host in hosts}
    for entry in compiled.values():
        entry.refine = None  # it holds the project: the parent attaches its own (compile_hosts)
    return compiled
