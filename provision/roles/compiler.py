"""A project: an inventory, its site.yml and roles, compiled to desired state.

Compiling is pure controller work: it reads files and renders templates,
and never touches the network. Every selected host is compiled before any
host is contacted, so a mistake in any of them stops the run with nothing
pushed anywhere.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision import __version__
from provision.errors import InventoryError, Location, PatternError, ProvisionError, TemplateError, VariableError
from provision.inventory import Inventory, load_inventory, select_hosts
from provision.roles.hostvars import check_role_variables, resolve_templates, secret_values
from provision.roles.loader import DirectoryResource, FileResource, HandlerResource, Role, RoleLoader, ValidatorResource, role_search_path
from provision.roles.render import Renderer
from provision.roles.site import Play, RoleUse, find_site_file, load_site
from provision.state import DesiredDirectory, DesiredFile, DesiredService, DesiredState, Handler, Validator

MANAGED_NOTE = "Managed by provision (role {role}): local changes will be overwritten."


@dataclass
class CompiledHost:
    desired: DesiredState
    secrets: list[str]
    variables: dict[str, Any]


@dataclass
class HostRoles:
    roles: list[Role] = field(default_factory=list)
    uses: list[RoleUse] = field(default_factory=list)
    play_vars: dict[str, Any] = field(default_factory=dict)


class Project:
    def __init__(self, inventory: Inventory, plays: list[Play], loader: RoleLoader, site_path: Path | None) -> None:
        self.inventory = inventory
        self.plays = plays
        self.loader = loader
        self.site_path = site_path
        self._renderers: dict[str, Renderer] = {}
        self._play_hosts: dict[int, set[str]] = {}
        self._groups: dict[str, list[str]] | None = None
        self._variable_renderer = Renderer([])

    @classmethod
    def load(cls, inventory_path: Path | list[Path], roles_path: list[Path] | None = None) -> Project:
        """``roles_path`` is searched before the usual places (a scenario's own role)."""
        inventory = load_inventory(inventory_path)
        site_path = find_site_file(inventory.directory)
        plays = load_site(site_path) if site_path else []
        search = [*(roles_path or []), *role_search_path(inventory.directory)]
        return cls(inventory, plays, RoleLoader(search), site_path)

    def select(self, limit: str | None) -> list[str]:
        hosts = select_hosts(self.inventory, limit or "all")
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

    def variables(self, host: str, assigned: HostRoles) -> tuple[dict[str, Any], dict[str, Location | None]]:
        """Merged, resolved variables of a host, and where each was set."""
        values: dict[str, Any] = {}
        where: dict[str, Location | None] = {}
        for role in assigned.roles:
            role_file = Location(str(role.path / "role.yml"))
            for name, value in role.defaults().items():
                values[name] = value
                where[name] = role_file
        for name, value in self.inventory.host_vars(host).items():
            values[name] = value
            where[name] = self.inventory.var_location(host, name)
        site = Location(str(self.site_path)) if self.site_path else None
        for source in [assigned.play_vars, *(use.vars for use in assigned.uses)]:
            for name, value in source.items():
                values[name] = value
                where[name] = site
        magic = self.magic_variables(host)
        values.update(magic)
        return resolve_templates(values, self._variable_renderer, where, frozenset(magic)), where

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

    def compile(self, host: str, tags: set[str] | None = None) -> CompiledHost:
        """The host's desired state, connection settings and secrets to mask."""
        assigned = self.host_roles(host)
        values, where = self.variables(host, assigned)
        desired, secrets = self._desired(host, assigned, values, where, tags)
        return CompiledHost(desired, secrets, values)

    def _desired(
        self, host: str, assigned: HostRoles, values: dict[str, Any], where: dict[str, Location | None], tags: set[str] | None
    ) -> tuple[DesiredState, list[str]]:
        declared = {name for role in assigned.roles for name in role.variables}
        desired = DesiredState(host=host, roles=[r.name for r in assigned.roles])
        for role, use in zip(assigned.roles, assigned.uses, strict=True):
            checked = check_role_variables(role, values, where, declared)
            context = {
                **values,
                **checked,
                "provision_managed": MANAGED_NOTE.format(role=role.name),
                "provision_version": __version__,
                "provision_roles": [r.name for r in assigned.roles],
                "inventory_dir": str(self.inventory.directory),
            }
            for name, expression in role.vars.items():
                context[name] = _computed(self.renderer(role), expression, context, f"vars of role {role.name}")
            _check_rules(role, self.renderer(role), context, where)
            role_tags = {role.name, *role.tags, *use.tags}
            _add_role(desired, role, self.renderer(role), context, role_tags, tags)
        secrets = secret_values(assigned.roles, values)
        return _mark_secrets(desired, secrets), secrets


def _selected(resource_tags: set[str], wanted: set[str] | None) -> bool:
    return wanted is None or bool(resource_tags & wanted)


def _items(
    resource: FileResource | DirectoryResource | HandlerResource | ValidatorResource,
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
    desired: DesiredState, role: Role, renderer: Renderer, context: dict[str, Any], role_tags: set[str], tags: set[str] | None
) -> None:
    where = f"role {role.name}"
    for directory in role.directories:
        if not _selected(role_tags | set(directory.tags), tags):
            continue
        for item in _items(directory, renderer, context, where):
            path = renderer.render_string(directory.path, item, where)
            mode_text = renderer.render_string(directory.mode, item, where)
            mode = None if mode_text == "keep" else _mode(mode_text, where)
            owner, group = (renderer.render_string(text, item, where) for text in (directory.owner, directory.group))
            desired.directories[path] = DesiredDirectory(path, mode, owner, group, role.name)
    for resource in role.files:
        if not _selected(role_tags | set(resource.tags), tags):
            continue
        for item in _items(resource, renderer, context, where):
            dest = renderer.render_string(resource.dest, item, where)
            if not dest.startswith("/"):
                raise TemplateError(f"file destination {dest!r} in {where} must be an absolute path", resource.location)
            if dest in desired.files:
                raise TemplateError(f"{dest} is declared twice (roles {desired.files[dest].role} and {role.name})", resource.location)
            content = _content(resource, role, renderer, item, where)
            desired.files[dest] = DesiredFile(
                path=dest,
                content=content,
                mode=_mode(renderer.render_string(resource.mode, item, where), where),
                owner=renderer.render_string(resource.owner, item, where),
                group=renderer.render_string(resource.group, item, where),
                role=role.name,
                source=resource.template or resource.src or resource.build or "content",
                secret=resource.secret,
                validate=renderer.render_string(resource.validate, item, where) if resource.validate else None,
                notify=tuple(renderer.render_string(n, item, where) for n in resource.notify),
                merge=_merge(resource, renderer, item, where),
                change_note=renderer.render_string(resource.change_note, item, where) or None if resource.change_note else None,
            )
    if not _selected(role_tags, tags):
        return
    for package in role.packages:
        # A package may be templated; one that renders empty is not wanted on this host.
        name = renderer.render_string(package, context, where).strip() if "{{" in package else package
        if name and name not in desired.packages:
            desired.packages.append(name)
    for service in role.services:
        if service.when is None or renderer.evaluate(service.when, context, where):
            desired.services.append(DesiredService(service.name, service.state, service.enabled, role.name))
    for handler in role.handlers:
        for item in _items(handler, renderer, context, where):
            name = renderer.render_string(handler.name, item, where)
            desired.handlers[name] = Handler(
                name,
                renderer.render_string(handler.command, item, where),
                role.name,
                renderer.render_string(handler.check, item, where) if handler.check else None,
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


def _computed(renderer: Renderer, expression: Any, context: dict[str, Any], where: str) -> Any:
    if isinstance(expression, str) and expression.strip().startswith("{{") and expression.strip().endswith("}}"):
        return renderer.evaluate(expression, context, where)
    if isinstance(expression, str):
        return renderer.render_string(expression, context, where)
    return expression


def _check_rules(role: Role, renderer: Renderer, context: dict[str, Any], where: dict[str, Location | None]) -> None:
    """The role's cross-variable rules; a broken one names the variable's file."""
    for rule in role.checks:
        if not renderer.evaluate(rule.that, context, f"a check of role {role.name}"):
            location = where.get(rule.variable) if rule.variable else None
            message = renderer.render_string(rule.message, context, f"a check of role {role.name}")
            prefix = f"variable {rule.variable}: " if rule.variable else f"role {role.name}: "
            raise VariableError(prefix + message, location or Location(str(role.path / "role.yml")))


def _merge(resource: FileResource, renderer: Renderer, context: dict[str, Any], where: str) -> tuple[str, Any] | None:
    if resource.merge is None:
        return None
    data = resource.merge["data"]
    return str(resource.merge["kind"]), renderer.evaluate(data, context, where) if isinstance(data, str) else data


def _content(resource: FileResource, role: Role, renderer: Renderer, context: dict[str, Any], where: str) -> bytes:
    if resource.merge is not None:
        from provision.roles.mergers import MERGERS

        kind, data = _merge(resource, renderer, context, where) or ("", None)
        return MERGERS[kind](b"", data)  # against an empty file until the probe tells what is there
    if resource.template is not None:
        name = renderer.render_string(resource.template, context, where) if "{{" in resource.template else resource.template
        return renderer.render_template(name, context).encode()
    if resource.content is not None:
        return renderer.render_string(str(resource.content), context, where).encode()
    if resource.build is not None:
        from provision.roles.builders import build

        return build(resource.build)
    source = role.files_dir / str(resource.src)
    try:
        return source.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"cannot read {source}: {exc.strerror}", resource.location) from None


def _mark_secrets(desired: DesiredState, secrets: list[str]) -> DesiredState:
    """A file that contains a secret variable's value is secret itself."""
    if not secrets:
        return desired
    encoded = [s.encode() for s in secrets]
    for path, entry in desired.files.items():
        if not entry.secret and any(s in entry.content for s in encoded):
            desired.files[path] = DesiredFile(**{**entry.__dict__, "secret": True})
    return desired


def require_site(project: Project) -> None:
    if not project.plays:
        where = Location(str(project.inventory.directory / "site.yml"))
        raise InventoryError("no site.yml beside the inventory: nothing maps hosts to roles", where)


# Below this many hosts a worker process costs more than it saves.
PARALLEL_COMPILE_MIN_HOSTS = 200
_CHUNK = 50
_forked: tuple[Project, set[str] | None] | None = None


def compile_hosts(project: Project, hosts: list[str], tags: set[str] | None) -> dict[str, CompiledHost]:
    """Every host's desired state, in ``hosts`` order; the first mistake raises.

    Compiling is pure CPU work, so a large fleet is compiled by one forked
    worker per core (the loaded project is inherited, not re-read).
    """
    workers = min(os.cpu_count() or 1, len(hosts) // _CHUNK)
    if len(hosts) < PARALLEL_COMPILE_MIN_HOSTS or workers < 2:
        return {host: project.compile(host, tags) for host in hosts}
    global _forked
    _forked = (project, tags)
    try:
        chunks = [hosts[start : start + _CHUNK] for start in range(0, len(hosts), _CHUNK)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            compiled: dict[str, CompiledHost] = {}
            for part in pool.map(_compile_chunk, chunks):
                compiled.update(part)
            return compiled
    finally:
        _forked = None


def _compile_chunk(hosts: list[str]) -> dict[str, CompiledHost]:
    assert _forked is not None, "only called in a forked worker"
    project, tags = _forked
    return {host: project.compile(host, tags) for host in hosts}
