"""Role folders: ``roles/<name>/role.yml`` plus ``templates/`` and ``files/``.

``role.yml`` declares the role's variables (typed, documented) and the state
it wants: files, directories, packages, services, handlers and validators.
Roles are looked up in the inventory's own ``roles/`` first, then in the
project's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from provision.bundled import roles_dir
from provision.errors import Location, RoleError
from provision.roles.builders import builder_names
from provision.roles.variables import TYPES, VariableSpec
from provision.yamlfile import LocatedDict, load_yaml_file

# What the engine can decide after the probe (provision/engine/converge.py).
GENERATOR_KINDS = ("certificates", "dkim_keys")


@dataclass
class FileResource:
    dest: str
    merge: dict[str, Any] | None = None
    """{kind: fstab, data: EXPR}: only the declared lines are managed (see mergers.py)."""
    template: str | None = None
    src: str | None = None
    content: str | None = None
    build: str | None = None
    """An artifact made on the controller, by name (see ``provision.roles.builders``)."""
    mode: str = "0644"
    owner: str = "root"
    group: str = "root"
    secret: bool = False
    validate: str | None = None
    notify: list[str] = field(default_factory=list)
    when: str | None = None
    loop: str | list[Any] | None = None
    loop_var: str = "item"
    tags: list[str] = field(default_factory=list)
    change_note: str | None = None
    """Said beside the file when its content changes (check's "why"), such as "warm-up step due"."""
    max_size: int = 8 * 1024 * 1024
    """The most bytes the file may hold: a 30 MB motd is a mistake, refused at compile time."""
    location: Location | None = None


@dataclass
class DirectoryResource:
    path: str
    mode: str = "0755"
    owner: str = "root"
    group: str = "root"
    when: str | None = None
    loop: str | list[Any] | None = None
    loop_var: str = "item"
    tags: list[str] = field(default_factory=list)
    location: Location | None = None


@dataclass
class ServiceResource:
    name: str
    state: str = "started"
    enabled: bool = True
    when: str | None = None
    verify: dict[str, Any] = field(default_factory=dict)
    """{settle: seconds, ports: [address:port] or an expression}: how to tell it is up after handlers and starts."""


@dataclass
class HandlerResource:
    name: str
    command: str
    check: str | None = None
    loop: str | list[Any] | None = None
    loop_var: str = "item"
    when: str | None = None
    supersedes: list[str] = field(default_factory=list)
    """Handlers that need not run when this one does (restart postfix supersedes reload postfix)."""


@dataclass
class CheckResource:
    """A rule across variables (like Ansible's assert), checked before rendering."""

    that: str
    message: str
    variable: str | None = None


@dataclass
class RequireResource:
    """A feature that exists only from some package version on. Checked once
    the host's probe has answered, before anything is pushed to it: an older
    host is refused with its name, release and version, and the variable."""

    package: str
    """The Debian package whose version decides (python3 for the host's Python)."""
    version: str
    """The oldest version that has the feature (Debian ordering)."""
    variable: str | None = None
    """The variable that asks for the feature (named, with where it was set, when refused)."""
    when: str | None = None
    """Only when this holds (the variable asks for the feature); always when absent."""
    feature: str = ""
    """What needs the version, in words (for the message)."""
    loop: str | list[Any] | None = None
    loop_var: str = "item"
    location: Location | None = None


@dataclass
class ValidatorResource:
    command: str
    files: list[str]
    description: str = ""
    when: str | None = None
    loop: str | list[Any] | None = None
    loop_var: str = "item"


@dataclass
class Role:
    name: str
    path: Path
    description: str = ""
    prefix: str = ""
    variables: dict[str, VariableSpec] = field(default_factory=dict)
    files: list[FileResource] = field(default_factory=list)
    directories: list[DirectoryResource] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    services: list[ServiceResource] = field(default_factory=list)
    handlers: list[HandlerResource] = field(default_factory=list)
    validators: list[ValidatorResource] = field(default_factory=list)
    checks: list[CheckResource] = field(default_factory=list)
    requires: list[RequireResource] = field(default_factory=list)
    """Package versions a feature needs (see RequireResource)."""
    vars: dict[str, Any] = field(default_factory=dict)
    """Values computed from the variables (role vars); not settable from an inventory."""
    facts: dict[str, str] = field(default_factory=dict)
    """Shell commands whose output the probe reports (name -> command)."""
    generate: list[dict[str, Any]] = field(default_factory=list)
    """[{kind: certificates, data: EXPR}]: files decided after the probe (see certificates.py)."""
    tags: list[str] = field(default_factory=list)
    variables_from: list[str] = field(default_factory=list)
    """Roles whose variables, checks and templates this role shares (python_mta renders postfix's files)."""
    template_dirs: list[Path] = field(default_factory=list)
    login_check: bool = False
    """A change to this role's files can lock the operator out: after it, a new login must work, else it is put back."""

    @property
    def templates_dir(self) -> Path:
        return self.path / "templates"

    @property
    def files_dir(self) -> Path:
        return self.path / "files"

    def defaults(self) -> dict[str, Any]:
        return {name: spec.default for name, spec in self.variables.items() if spec.has_default}


def _keys(resource: type, *internal: str) -> set[str]:
    """The keys a role.yml mapping may hold: the dataclass's own fields, less the loader's."""
    return {f.name for f in fields(resource)} - set(internal)


_ROLE_KEYS = _keys(Role, "name", "path", "template_dirs")
_FILE_KEYS = _keys(FileResource, "location")
_DIR_KEYS = _keys(DirectoryResource, "location")
_SERVICE_KEYS = _keys(ServiceResource)
_VERIFY_KEYS = {"settle", "ports"}
_HANDLER_KEYS = _keys(HandlerResource)
_CHECK_KEYS = _keys(CheckResource)
_REQUIRE_KEYS = _keys(RequireResource, "location")
_VALIDATOR_KEYS = _keys(ValidatorResource)
# A variable's declaration: VariableSpec's fields, named as in Ansible's argument_spec.
_SPEC_KEYS = _keys(VariableSpec, "name", "has_default", "extra", "minimum", "maximum") | {"min", "max", "example"}


_ROLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def role_search_path(inventory_dir: Path | None) -> list[Path]:
    """The inventory's roles/, then PROVISION_ROLES_PATH (colon-separated), then the bundled roles."""
    paths = []
    if inventory_dir is not None:
        paths.append(inventory_dir / "roles")
    paths += [Path(p) for p in os.environ.get("PROVISION_ROLES_PATH", "").split(":") if p]
    paths.append(roles_dir())
    return paths


def available_roles(search_path: list[Path]) -> list[str]:
    names: dict[str, None] = {}
    for folder in search_path:
        if folder.is_dir():
            names.update(dict.fromkeys(sorted(p.name for p in folder.iterdir() if (p / "role.yml").is_file())))
    return list(names)


class RoleLoader:
    """Loads each role once; roles are looked up along ``search_path``."""

    def __init__(self, search_path: list[Path]) -> None:
        self.search_path = search_path
        self._cache: dict[str, Role] = {}
        self._sharing: list[str] = []

    def get(self, name: str, where: Location | None = None) -> Role:
        if not _ROLE_NAME.fullmatch(name) or name in (".", ".."):
            raise RoleError(
                f"role name {name!r} is not a plain name (letters, digits, '_', '-', '.'): a role is found by name "
                "in the inventory's roles/, PROVISION_ROLES_PATH or the bundled roles, never by a path",
                where,
            )
        if name not in self._cache:
            self._cache[name] = self._load(name, where)
        return self._cache[name]

    def _load(self, name: str, where: Location | None) -> Role:
        for folder in self.search_path:
            definition = folder / name / "role.yml"
            if definition.is_file():
                return self._share(parse_role(name, definition), where)
        known = available_roles(self.search_path)
        import difflib  # only for a mistake's hint

        hint = difflib.get_close_matches(name, known, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (known roles: {', '.join(known) or 'none'})"
        raise RoleError(f"unknown role {name!r}{suggestion}", where)

    def _share(self, role: Role, where: Location | None) -> Role:
        """Give ``role`` the variables, computed vars, checks and templates of its ``variables_from`` roles."""
        self._sharing.append(role.name)
        try:
            for name in role.variables_from:
                if name in self._sharing:
                    cycle = " -> ".join([*self._sharing, name])
                    raise RoleError(f"variables_from goes round in a circle: {cycle}", Location(str(role.path / "role.yml")))
                other = self.get(name, where)
                role.variables = {**other.variables, **role.variables}
                role.vars = {**other.vars, **role.vars}
                role.checks = [*other.checks, *role.checks]
                role.template_dirs += [other.templates_dir, *other.template_dirs]
        finally:
            self._sharing.pop()
        return role


def _where(data: Any, key: str | None, fallback: Path) -> Location:
    if isinstance(data, LocatedDict):
        found = data.where(key) if key is not None else data.location
        if found is not None:
            return found
    return Location(str(fallback))


def _check_keys(data: Any, allowed: set[str], what: str, path: Path) -> None:
    if not isinstance(data, dict):
        raise RoleError(f"{what} must be a mapping", _where(data, None, path))
    for key in data:
        if key not in allowed:
            import difflib  # only for a mistake's hint

            hint = difflib.get_close_matches(key, allowed, n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else f" (allowed: {', '.join(sorted(allowed))})"
            raise RoleError(f"unknown key {key!r} in {what}{suggestion}", _where(data, key, path))


def _str_list(value: Any, what: str, where: Location) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RoleError(f"{what} must be a string or a list of strings", where)
    return list(value)


def parse_spec(name: str, data: Any, path: Path) -> VariableSpec:
    if not isinstance(data, dict):
        raise RoleError(f"variable {name!r} must be declared as a mapping with at least 'type'", _where(data, None, path))
    _check_keys(data, _SPEC_KEYS, f"the declaration of variable {name!r}", path)
    kind = data.get("type", "str")
    if kind not in TYPES:
        raise RoleError(f"variable {name!r} has unknown type {kind!r} (types: {', '.join(TYPES)})", _where(data, "type", path))
    options = None
    if data.get("options") is not None:
        raw_options = data["options"]
        if not isinstance(raw_options, dict):
            raise RoleError(f"options of {name!r} must be a mapping", _where(data, "options", path))
        options = {key: parse_spec(f"{name}.{key}", value, path) for key, value in raw_options.items()}
    elements = parse_spec(f"{name}[]", data["elements"], path) if data.get("elements") is not None else None
    keys = parse_spec(f"{name} key", data["keys"], path) if data.get("keys") is not None else None
    values = parse_spec(f"{name}.*", data["values"], path) if data.get("values") is not None else None
    return VariableSpec(
        name=name,
        type=kind,
        description=str(data.get("description", "")).strip(),
        default=data.get("default"),
        has_default="default" in data,
        required=bool(data.get("required", False)),
        choices=data.get("choices"),
        elements=elements,
        options=options,
        keys=keys,
        values=values,
        minimum=data.get("min"),
        maximum=data.get("max"),
        pattern=data.get("pattern"),
        secret=bool(data.get("secret", False)),
        multiline=bool(data.get("multiline", False)),
        unique_by=data.get("unique_by"),
        extra={"example": data["example"]} if "example" in data else {},
    )


def _loop(entry: Any, path: Path) -> str | list[Any] | None:
    value = entry.get("loop")
    if value is None or isinstance(value, (str, list)):
        return value
    raise RoleError("'loop' must be an expression or a list", _where(entry, "loop", path))


def _entries(data: Any, key: str, path: Path) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise RoleError(f"'{key}' must be a list", _where(data, key, path))
    return value


def parse_role(name: str, definition: Path) -> Role:
    data = load_yaml_file(definition)
    if data is None:
        data = LocatedDict()
    _check_keys(data, _ROLE_KEYS, f"role {name!r}", definition)
    role = Role(
        name=name,
        path=definition.parent,
        description=str(data.get("description", "")).strip(),
        prefix=str(data.get("prefix", f"{name}_")),
        tags=_str_list(data.get("tags"), "tags", _where(data, "tags", definition)),
        variables_from=_str_list(data.get("variables_from"), "variables_from", _where(data, "variables_from", definition)),
        login_check=_flag(data, "login_check", definition),
    )
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise RoleError("'variables' must be a mapping", _where(data, "variables", definition))
    role.variables = {key: parse_spec(key, value, definition) for key, value in variables.items()}
    computed = data.get("vars") or {}
    if not isinstance(computed, dict):
        raise RoleError("'vars' must be a mapping of names to expressions", _where(data, "vars", definition))
    for key in computed:
        if key in role.variables:
            raise RoleError(f"{key!r} is both a variable and a computed var", _where(computed, key, definition))
    role.vars = dict(computed)
    facts = data.get("facts") or {}
    if not isinstance(facts, dict) or not all(isinstance(v, str) for v in facts.values()):
        raise RoleError("'facts' must map names to shell commands", _where(data, "facts", definition))
    role.facts = dict(facts)
    for entry in _entries(data, "generate", definition):
        if not isinstance(entry, dict) or entry.get("kind") not in GENERATOR_KINDS or "data" not in entry:
            kinds = " or ".join(GENERATOR_KINDS)
            raise RoleError(f"a generate entry needs kind: {kinds} and data", _where(entry, None, definition))
        role.generate.append(dict(entry))

    role.files = _parse_files(data, definition)
    role.directories = _parse_directories(data, definition)
    role.packages = _str_list(data.get("packages"), "packages", _where(data, "packages", definition))
    role.services = _parse_services(data, definition)
    role.handlers = _parse_handlers(data, definition)
    # Names with {{ }} (a handler per loop item) are checked once rendered.
    handler_names = {h.name for h in role.handlers}
    for resource in role.files:
        for handler in resource.notify:
            if "{{" not in handler and handler not in handler_names:
                raise RoleError(f"file {resource.dest!r} notifies unknown handler {handler!r}", resource.location)
    role.checks = _parse_checks(data, definition)
    role.requires = _parse_requires(data, definition)
    role.validators = _parse_validators(data, definition)
    return role


def _parse_files(data: Any, definition: Path) -> list[FileResource]:
    found: list[FileResource] = []
    for entry in _entries(data, "files", definition):
        _check_keys(entry, _FILE_KEYS, "a file entry", definition)
        where = _where(entry, None, definition)
        if "dest" not in entry:
            raise RoleError("a file entry needs 'dest'", where)
        if sum(k in entry for k in ("template", "src", "content", "merge", "build")) != 1:
            raise RoleError("a file entry needs exactly one of 'template', 'src', 'content', 'merge' or 'build'", where)
        if "build" in entry and entry["build"] not in builder_names():
            raise RoleError(f"'build' must be one of {', '.join(builder_names())}", _where(entry, "build", definition))
        merge = entry.get("merge")
        if merge is not None:
            from provision.roles.mergers import MERGERS

            if not isinstance(merge, dict) or merge.get("kind") not in MERGERS or "data" not in merge:
                raise RoleError(f"'merge' needs kind (one of {', '.join(MERGERS)}) and data", _where(entry, "merge", definition))
        found.append(
            FileResource(
                dest=str(entry["dest"]),
                merge=merge,
                template=entry.get("template"),
                src=entry.get("src"),
                content=entry.get("content"),
                build=entry.get("build"),
                mode=str(entry.get("mode", "0644")),
                owner=str(entry.get("owner", "root")),
                group=str(entry.get("group", "root")),
                secret=bool(entry.get("secret", False)),
                validate=entry.get("validate"),
                notify=_str_list(entry.get("notify"), "notify", where),
                when=entry.get("when"),
                loop=_loop(entry, definition),
                loop_var=str(entry.get("loop_var", "item")),
                tags=_str_list(entry.get("tags"), "tags", where),
                change_note=entry.get("change_note"),
                max_size=_size(entry.get("max_size", FileResource.max_size), _where(entry, "max_size", definition)),
                location=where,
            )
        )
    return found


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def _size(value: Any, where: Location) -> int:
    """A size in bytes: 4096, "512k", "32M", "1g" (powers of 1024)."""
    text = str(value).strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = (text[:-1], text[-1]) if text[-1:] in _SIZE_UNITS else (text, "")
    if isinstance(value, bool) or not number.isdigit():
        raise RoleError(f"max_size must be a size in bytes (such as 4096, 512k or 32M), got {value!r}", where)
    return int(number) * _SIZE_UNITS[unit]


def _parse_directories(data: Any, definition: Path) -> list[DirectoryResource]:
    found: list[DirectoryResource] = []
    for entry in _entries(data, "directories", definition):
        _check_keys(entry, _DIR_KEYS, "a directory entry", definition)
        where = _where(entry, None, definition)
        if "path" not in entry:
            raise RoleError("a directory entry needs 'path'", where)
        found.append(
            DirectoryResource(
                path=str(entry["path"]),
                mode=str(entry.get("mode", "0755")),
                owner=str(entry.get("owner", "root")),
                group=str(entry.get("group", "root")),
                when=entry.get("when"),
                loop=_loop(entry, definition),
                loop_var=str(entry.get("loop_var", "item")),
                tags=_str_list(entry.get("tags"), "tags", where),
                location=where,
            )
        )
    return found


def _flag(data: Any, key: str, definition: Path) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise RoleError(f"'{key}' must be true or false", _where(data, key, definition))
    return value


def _parse_services(data: Any, definition: Path) -> list[ServiceResource]:
    found: list[ServiceResource] = []
    for entry in _entries(data, "services", definition):
        _check_keys(entry, _SERVICE_KEYS, "a service entry", definition)
        if entry.get("state", "started") not in ("started", "stopped"):
            raise RoleError("a service's state must be 'started' or 'stopped'", _where(entry, "state", definition))
        verify = entry.get("verify") or {}
        _check_keys(verify, _VERIFY_KEYS, "a service's verify", definition)
        settle = verify.get("settle", 1.0)
        if isinstance(settle, bool) or not isinstance(settle, (int, float)) or not 0 <= settle <= 60:
            raise RoleError("verify's settle must be seconds, from 0 to 60", _where(verify, "settle", definition))
        ports = verify.get("ports", [])
        if not isinstance(ports, str):
            ports = _str_list(ports, "verify's ports", _where(verify, "ports", definition))
        found.append(
            ServiceResource(
                str(entry["name"]),
                entry.get("state", "started"),
                bool(entry.get("enabled", True)),
                entry.get("when"),
                {"settle": float(settle), "ports": ports},
            )
        )
    return found


def _parse_handlers(data: Any, definition: Path) -> list[HandlerResource]:
    found: list[HandlerResource] = []
    for entry in _entries(data, "handlers", definition):
        _check_keys(entry, _HANDLER_KEYS, "a handler", definition)
        if "name" not in entry or "command" not in entry:
            raise RoleError("a handler needs 'name' and 'command'", _where(entry, None, definition))
        found.append(
            HandlerResource(
                str(entry["name"]),
                str(entry["command"]),
                entry.get("check"),
                _loop(entry, definition),
                str(entry.get("loop_var", "item")),
                entry.get("when"),
                _str_list(entry.get("supersedes"), "supersedes", _where(entry, "supersedes", definition)),
            )
        )
    return found


def _parse_checks(data: Any, definition: Path) -> list[CheckResource]:
    found: list[CheckResource] = []
    for entry in _entries(data, "checks", definition):
        _check_keys(entry, _CHECK_KEYS, "a check", definition)
        if "that" not in entry or "message" not in entry:
            raise RoleError("a check needs 'that' (an expression) and 'message'", _where(entry, None, definition))
        found.append(CheckResource(str(entry["that"]), str(entry["message"]), entry.get("variable")))
    return found


def _parse_requires(data: Any, definition: Path) -> list[RequireResource]:
    found: list[RequireResource] = []
    for entry in _entries(data, "requires", definition):
        _check_keys(entry, _REQUIRE_KEYS, "a requires entry", definition)
        where = _where(entry, None, definition)
        if not isinstance(entry.get("package"), str) or not isinstance(entry.get("version"), (str, int, float)):
            raise RoleError("a requires entry needs 'package' (a Debian package) and 'version' (the oldest that has the feature)", where)
        variable = entry.get("variable")
        if variable is not None and not isinstance(variable, str):
            raise RoleError("'variable' of a requires entry must be a variable's name", where)
        found.append(
            RequireResource(
                entry["package"],
                str(entry["version"]),
                variable,
                entry.get("when"),
                str(entry.get("feature", "")),
                _loop(entry, definition),
                str(entry.get("loop_var", "item")),
                where,
            )
        )
    return found


def _parse_validators(data: Any, definition: Path) -> list[ValidatorResource]:
    found: list[ValidatorResource] = []
    for entry in _entries(data, "validators", definition):
        _check_keys(entry, _VALIDATOR_KEYS, "a validator", definition)
        if "command" not in entry:
            raise RoleError("a validator needs 'command'", _where(entry, None, definition))
        where = _where(entry, None, definition)
        found.append(
            ValidatorResource(
                str(entry["command"]),
                _str_list(entry.get("files"), "files", where),
                str(entry.get("description", "")),
                entry.get("when"),
                _loop(entry, definition),
                str(entry.get("loop_var", "item")),
            )
        )
    return found
