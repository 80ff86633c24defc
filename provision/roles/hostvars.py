"""Variables for one host and one role: defaults, inventory, play, checks.

Order (lowest first): role defaults < inventory (Ansible precedence) < play
vars < the role entry's vars in site.yml. Values may reference other
variables with ``{{ }}``, as in Ansible; they are resolved, then checked
against each role's declared types before anything renders.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from provision.errors import Location, TemplateError, VariableError
from provision.inventory.vault import VaultText
from provision.roles.loader import Role
from provision.roles.render import Renderer, contains_template
from provision.roles.variables import VariableSpec, VariableValueError, check_value
from provision.yamlfile import LocatedDict, LocatedList


class _Stop(BaseException):
    """Carries a VariableError out through Jinja, which wraps every Exception it sees.

    A value is resolved while another one renders (it refers to it); the error
    must name the variable that is wrong, not the one that referred to it.
    """

    def __init__(self, error: VariableError) -> None:
        super().__init__(str(error))
        self.error = error


class _Resolving(Mapping[str, Any]):
    """Variables resolved on first use, each after the ones it refers to.

    Rendering a value looks its references up here, which resolves them
    first (depth first, each once), so a value that refers to another
    templated value always sees that value's result, never its template.
    """

    def __init__(
        self, raw: dict[str, Any], renderer: Renderer, where: dict[str, Location | None], fixed: frozenset[str], secret: frozenset[str]
    ) -> None:
        self.raw, self.renderer, self.where, self.fixed, self.secret = raw, renderer, where, fixed, secret
        self.done: dict[str, Any] = {}
        self.active: list[str] = []

    def __getitem__(self, key: str) -> Any:
        if key in self.done:
            return self.done[key]
        value = self.raw[key]
        # ``fixed`` names (groups: every host of the inventory) never hold a
        # template; scanning them would make compiling a fleet quadratic.
        if key in self.fixed or not contains_template(value):
            self.done[key] = value
            return value
        if key in self.active:
            cycle = " -> ".join([*self.active[self.active.index(key) :], key])
            raise _Stop(VariableError(f"variable {key!r} refers to itself through other variables ({cycle})", self.where.get(key)))
        self.active.append(key)
        try:
            result = _render_value(value, self.renderer, self, key, self.where.get(key))
        except VariableError as exc:
            if key in self.secret:
                exc = VariableError(
                    f"variable {key!r} is secret and its value does not render as a template (the reason is not shown, "
                    "as it would show part of the value); if it is meant literally, wrap it in {% raw %}...{% endraw %}",
                    exc.location,
                )
            raise _Stop(exc) from None
        finally:
            self.active.pop()
        self.done[key] = result
        return result

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def resolve_templates(
    values: dict[str, Any],
    renderer: Renderer,
    where: dict[str, Location | None],
    fixed: frozenset[str] = frozenset(),
    secret: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Render ``{{ }}`` inside variable values against the other values, as Ansible does.

    An error in a ``secret`` variable's value does not quote the value.
    """
    resolving = _Resolving(values, renderer, where, fixed, secret)
    try:
        return {key: resolving[key] for key in values}
    except _Stop as stop:
        raise stop.error from None


def _render_value(value: Any, renderer: Renderer, context: Mapping[str, Any], key: str, where: Location | None) -> Any:
    if isinstance(value, str):
        if not contains_template(value):
            return value
        stripped = value.strip()
        # A value that is one bare expression keeps its type, as in Ansible.
        if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
            try:
                return renderer.evaluate(stripped, context, f"variable {key!r}")
            except TemplateError as exc:
                raise VariableError(exc.message, where) from None
        try:
            return renderer.render_string(value, context, f"variable {key!r}")
        except TemplateError as exc:
            raise VariableError(exc.message, where) from None
    if isinstance(value, list):
        items = [_render_value(v, renderer, context, key, where) for v in value]
        return value.located_copy(items) if isinstance(value, LocatedList) else items
    if isinstance(value, dict):
        rendered = {k: _render_value(v, renderer, context, key, where) for k, v in value.items()}
        return value.located_copy(rendered) if isinstance(value, LocatedDict) else rendered
    return value


def check_role_variables(
    role: Role,
    values: dict[str, Any],
    locate: dict[str, Location | None],
    declared_elsewhere: set[str],
) -> dict[str, Any]:
    """Check every variable the role declares; return the checked values.

    A variable that carries the role's prefix but that the role does not
    declare is almost always a typo, so it is an error with a suggestion.
    """
    checked: dict[str, Any] = {}
    for name, spec in role.variables.items():
        where = locate.get(name) or Location(str(role.path / "role.yml"))
        if name not in values:
            if spec.required:
                raise VariableError(f"role {role.name!r} needs variable {name!r} ({spec.describe()}): it is not set", where)
            continue
        checked[name] = _check(spec, values[name], where, role)
    for name in values:
        if role.prefix and name.startswith(role.prefix) and name not in role.variables and name not in declared_elsewhere:
            hint = difflib.get_close_matches(name, list(role.variables), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            raise VariableError(f"unknown variable {name!r} for role {role.name!r}{suggestion}", locate.get(name))
    return checked


def _check(spec: VariableSpec, value: Any, where: Location, role: Role) -> Any:
    try:
        return check_value(value, spec)
    except VariableValueError as exc:
        raise VariableError(f"variable {spec.name}{exc.path}: {exc.message}", locate(value, exc.path) or where) from None


_PATH_STEP = re.compile(r"\[(\d+)\]|\.([^.\[]+)")


def locate(value: Any, path: str) -> Location | None:
    """Where the part ``path`` ("[1].port", ".tls.cert_file") of a value was written.

    Mappings loaded from YAML know where each key stands; the deepest one on
    the path that does gives the line (a list item that is a plain value is
    found at its list's key)."""
    found: Location | None = None
    for step in _PATH_STEP.finditer(path):
        index, key = step.groups()
        if index is not None:
            if not isinstance(value, list) or int(index) >= len(value):
                break
            if isinstance(value, LocatedList):
                found = value.where(int(index)) or found
            value = value[int(index)]
        else:
            if not isinstance(value, dict) or key not in value:
                break
            if isinstance(value, LocatedDict):
                found = value.where(key) or found
            value = value[key]
    return found


def secret_names(roles: list[Role]) -> frozenset[str]:
    """Variables that are, or hold a field that is, declared secret (and Ansible's password variables)."""
    declared = {name for role in roles for name, spec in role.variables.items() if _holds_secret(spec)}
    return frozenset(declared | set(ANSIBLE_PASSWORD_VARIABLES))


def _holds_secret(spec: VariableSpec) -> bool:
    if spec.secret:
        return True
    if spec.elements is not None and _holds_secret(spec.elements):
        return True
    return any(_holds_secret(option) for option in (spec.options or {}).values())


# Ansible's own password variables: secrets whether or not a role declares them.
ANSIBLE_PASSWORD_VARIABLES = ("ansible_password", "ansible_ssh_pass", "ansible_become_password", "ansible_become_pass")


def secret_values(roles: list[Role], values: dict[str, Any], skip: frozenset[str] = frozenset()) -> list[str]:
    """String values to mask: every variable (or field of one) a role declares
    secret, Ansible's password variables, and every value decrypted from a
    vault. ``skip`` names variables that hold none (``groups``: every host)."""
    found: list[str] = []
    for role in roles:
        for name, spec in role.variables.items():
            if name in values:
                _collect_secrets(spec, values[name], found)
    for name in ANSIBLE_PASSWORD_VARIABLES:
        if name in values:
            _collect_strings(values[name], found)
    for name, value in values.items():
        if name not in skip:
            _collect_vault_text(value, found)
    return list(dict.fromkeys(s for s in found if len(s) >= 4))


def _collect_vault_text(value: Any, found: list[str]) -> None:
    if isinstance(value, VaultText):
        found.append(str(value))
    elif isinstance(value, list):
        for item in value:
            _collect_vault_text(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_vault_text(item, found)


def _collect_secrets(spec: VariableSpec, value: Any, found: list[str]) -> None:
    if spec.secret:
        _collect_strings(value, found)
    elif spec.options is not None and isinstance(value, dict):
        for key, option in spec.options.items():
            if key in value:
                _collect_secrets(option, value[key], found)
    elif spec.elements is not None and isinstance(value, list):
        for item in value:
            _collect_secrets(spec.elements, item, found)
    elif spec.values is not None and isinstance(value, dict):
        for item in value.values():
            _collect_secrets(spec.values, item, found)


def _collect_strings(value: Any, found: list[str]) -> None:
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, list):
        for item in value:
            _collect_strings(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_strings(item, found)


# Connection settings and Ansible's own variables are never a role's.
_NOT_ROLE_VARIABLES = frozenset(
    {"host", "port", "user", "ssh_key", "known_hosts", "become", "python", "container", "connection", "proxy_jump", "provision_root"}
)
_MIN_NEAR_LENGTH = 4


def one_edit_apart(a: str, b: str) -> bool:
    """True when ``a`` becomes ``b`` by one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    start = 0
    while start < len(a) and a[start] == b[start]:
        start += 1
    if len(a) < len(b):
        return a[start:] == b[start + 1 :]
    if a[start + 1 :] == b[start + 1 :]:
        return True  # one substitution
    return start + 1 < len(a) and a[start] == b[start + 1] and a[start + 1] == b[start] and a[start + 2 :] == b[start + 2 :]


class NearMisses:
    """Variables set for a host that look like a typo of a variable of one of its roles.

    ``postifx_mynetworks`` (a swap) and ``mynetwork`` (no prefix, one letter
    short) both suggest ``postfix_mynetworks``. Answers are cached per name
    and set of roles, so a fleet whose hosts share their variables' names
    costs what one host does.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, tuple[str, ...]], str | None] = {}
        self._declared: dict[tuple[str, ...], tuple[frozenset[str], list[tuple[str, str]]]] = {}

    def _index(self, roles: list[Role]) -> tuple[tuple[str, ...], frozenset[str], list[tuple[str, str]]]:
        key = tuple(role.name for role in roles)
        if key not in self._declared:
            names = frozenset(name for role in roles for name in role.variables)
            # (what a typo is compared with, the variable to suggest): the name, and the name without its role's prefix.
            forms = [(name, name) for name in sorted(names)]
            for role in roles:
                for name in sorted(role.variables):
                    if role.prefix and name.startswith(role.prefix) and len(name) - len(role.prefix) >= _MIN_NEAR_LENGTH:
                        forms.append((name[len(role.prefix) :], name))
            self._declared[key] = (names, forms)
        return (key, *self._declared[key])

    def suggestion(self, name: str, roles: list[Role]) -> str | None:
        key, declared, forms = self._index(roles)
        if (name, key) in self._cache:
            return self._cache[(name, key)]
        found = None
        if name not in declared and name not in _NOT_ROLE_VARIABLES and not name.startswith("ansible_") and len(name) >= _MIN_NEAR_LENGTH:
            for form, variable in forms:
                if form == name or one_edit_apart(name, form):
                    found = variable
                    break
        self._cache[(name, key)] = found
        return found
