"""Jinja2 rendering: sandboxed environments, StrictUndefined, safe filters.

Every error a user can cause while rendering (an undefined variable, a
syntax error, a value a filter refuses) becomes a TemplateError naming the
template and line.
"""

from __future__ import annotations

import json
import re
import shlex
import traceback
from collections import ChainMap
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from provision.errors import Location, TemplateError
from provision.roles.variables import alias_target_text, apache_line_text, apache_no_variables, postfix_text
from provision.yamlfile import UnsafeText

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _line(value: Any) -> str:
    """Refuse a value that would spill onto a second config line (or carry a control character)."""
    text = str(value)
    if "\n" in text or "\r" in text or "\x00" in text:
        raise ValueError(f"value {text[:40]!r} contains a newline and cannot stand on one config line")
    found = _CONTROL.search(text)
    if found:
        raise ValueError(f"value {text[:40]!r} contains the control character {found.group()!r}")
    return text


# --- Apache: ap_getword_conf() reads "..." with \" and \\ as escapes; ${NAME}
# is replaced on every line before that, quoted or not, so it is refused.


def _apache_quote(value: Any) -> str:
    text = _line(value)
    apache_no_variables(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _apache_word(value: Any) -> str:
    """One argument: as it is when nothing in it is special to Apache, else quoted."""
    text = _line(value)
    return text if re.fullmatch(r"[A-Za-z0-9_.+/:|=@-]+", text) else _apache_quote(text)


def _apache_args(value: Any) -> str:
    """Arguments written as they are (Require): one line, no ${...}, no trailing backslash."""
    text = _line(value)
    apache_line_text(text)
    return text


# Handlers that a module provides, and that module; a handler no loaded module
# answers to makes Apache serve the file as it is.
APACHE_HANDLERS = {
    "cgi-script": "cgi",
    "server-status": "status",
    "server-info": "info",
    "send-as-is": "asis",
    "imap-file": "imagemap",
    "type-map": "negotiation",
    "default-handler": "",
}
_PROXY_SCHEMES = {
    "fcgi": "proxy_fcgi",
    "http": "proxy_http",
    "https": "proxy_http",
    "uwsgi": "proxy_uwsgi",
    "scgi": "proxy_scgi",
    "ajp": "proxy_ajp",
}


def _vhost_handlers(vhosts: Any) -> list[tuple[str, str]]:
    """(where, handler) of every AddHandler and SetHandler of the vhosts."""
    found = []
    for index, vhost in enumerate(vhosts or []):
        for handler in vhost.get("handlers") or {}:
            found.append((f"apache_vhosts[{index}].handlers", str(handler)))
        for number, location in enumerate(vhost.get("locations") or []):
            if location.get("handler"):
                found.append((f"apache_vhosts[{index}].locations[{number}].handler", str(location["handler"])))
    return found


def _handler_modules(handler: str, mpm: str, provided: dict[str, str]) -> list[str] | None:
    if handler in provided:
        return [provided[handler]]
    if handler == "cgi-script":
        return ["cgi" if mpm == "prefork" else "cgid"]
    if handler in APACHE_HANDLERS:
        return [APACHE_HANDLERS[handler]] if APACHE_HANDLERS[handler] else []
    scheme = re.match(r"^proxy:(?:unix:[^|]+\|)?([a-z]+)://", handler)
    if scheme and scheme.group(1) in _PROXY_SCHEMES:
        return ["proxy", _PROXY_SCHEMES[scheme.group(1)]]
    return None


def _apache_handler_modules(vhosts: Any, mpm: str, provided: dict[str, str] | None = None) -> list[str]:
    """The modules that the vhosts' handlers need, so that each handler is answered."""
    modules: list[str] = []
    for _where, handler in _vhost_handlers(vhosts):
        modules += _handler_modules(handler, mpm, provided or {}) or []
    return list(dict.fromkeys(modules))


def _apache_unknown_handlers(vhosts: Any, provided: dict[str, str] | None = None) -> list[str]:
    return [
        f"{where}: {handler}" for where, handler in _vhost_handlers(vhosts) if _handler_modules(handler, "event", provided or {}) is None
    ]


def _apache_duplicate_names(vhosts: Any) -> list[str]:
    """Names (ServerName or ServerAlias) that two vhosts of one address claim.

    Apache compares host names case-insensitively and sends a request to the
    first vhost of its address that names it; a second claim is never used.
    """
    clashes: list[str] = []
    claimed: dict[tuple[str, str], tuple[int, str, str]] = {}
    for index, vhost in enumerate(vhosts or []):
        listen = str(vhost.get("listen") or "*:80")
        names = [("server_name", vhost.get("server_name"))] + [(f"aliases[{n}]", a) for n, a in enumerate(vhost.get("aliases") or [])]
        for field, name in names:
            if not name:
                continue
            key = (listen, str(name).lower().rstrip("."))
            first = claimed.get(key)
            if first is None:
                claimed[key] = (index, field, str(name))
            elif first[0] != index:
                clashes.append(
                    f"{name} on {listen} is named by apache_vhosts[{first[0]}].{first[1]} ({first[2]}) and "
                    f"apache_vhosts[{index}].{field} ({name}); host names compare case-insensitively, and Apache "
                    f"would send every request for it to apache_vhosts[{first[0]}]"
                )
    return clashes


# --- Postfix: main.cf "name = value" (whitespace around the value is removed);
# master.cf splits arguments at whitespace outside { }, and "-o { name = value }"
# (Postfix 3.0+) carries a value with whitespace. See postfix_text for what no
# quoting can carry.


def _postfix_name(value: Any) -> str:
    text = str(value)
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", text):
        raise ValueError(f"{text[:40]!r} is not a Postfix parameter name")
    return text


def _postfix_value(value: Any) -> str:
    if value is True or value is False:
        return _yesno(value)
    if value is None:
        return ""
    items = value if isinstance(value, (list, tuple)) else [value]
    texts = []
    for item in items:
        text = _yesno(item) if item is True or item is False else _line(item)
        postfix_text(text)
        texts.append(text)
    return ", ".join(texts)


def _postfix_option(name: Any, value: Any) -> str:
    """One ``-o`` argument of a master.cf service."""
    text = _postfix_value(value)
    if re.search(r"\s", text):
        return f"-o {{ {_postfix_name(name)} = {text} }}"
    return f"-o {_postfix_name(name)}={text}"


def _lookup_key(value: Any) -> str:
    text = _line(value)
    if not text or re.search(r"\s", text) or text.startswith("#"):
        raise ValueError(f"{text[:40]!r} cannot be a lookup table key (whitespace ends a key, # starts a comment)")
    return text


def _alias_name(value: Any) -> str:
    text = _line(value)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._+-]*", text):
        raise ValueError(f"{text[:40]!r} cannot be an alias name")
    return text


def _alias_targets(value: Any) -> str:
    """aliases(5) targets: addresses as they are, commands and files in double quotes."""
    items = value if isinstance(value, (list, tuple)) else [value]
    texts = []
    for item in items:
        text = _line(item)
        alias_target_text(text)
        texts.append(f'"{text}"' if text.startswith(("|", "/", ":include:")) else text)
    return ", ".join(texts)


def _unknown_sender_transports(instances: Any) -> list[str]:
    """ "instance: transport" for each sender_transports entry naming a transport its instance does not define."""
    found = []
    for instance in instances or []:
        names = {transport["name"] for transport in instance.get("transports") or []}
        found += [f"{instance['name']}: {name}" for name in (instance.get("sender_transports") or {}).values() if name not in names]
    return found


def _postfix_list(value: Any, separator: str = ", ") -> str:
    items = value if isinstance(value, (list, tuple)) else [value]
    return separator.join(_line(item) for item in items)


def _yesno(value: Any) -> str:
    return "yes" if value else "no"


def _regex_replace(value: Any, pattern: str, replacement: str = "") -> str:
    return re.sub(pattern, replacement, str(value))


def _weighted_names(transports: Any) -> list[str]:
    """Each transport's name repeated by its weight (for randmap:{...}); weight 0
    (an address before its warm-up starts) leaves it out, but never all of them."""
    names: list[str] = []
    for transport in transports:
        weight = transport.get("weight")
        names += [_line(transport["name"])] * (1 if weight is None else int(weight))
    if transports and not names:
        raise ValueError("every transport of random selection is before its warm-up start: nothing could send")
    return names


def _warmup(transports: Any, on: Any = None, volumes: Any = None) -> list[dict[str, Any]]:
    from provision.roles.warmup import transports_on

    return transports_on(transports, on, volumes or None)


def _local_ca_pem(directory: str) -> str:
    from provision.roles.certificates import local_ca_pem

    return local_ca_pem(directory)


def _version_test(value: Any, reference: Any, operator: str = ">=") -> bool:
    from provision.roles.facts import version_test  # python-debian is imported only where versions are compared

    return version_test(value, reference, operator)


def _dkim_key_entries(keys: Any) -> list[dict[str, Any]]:
    """The dkim role's keys with the path each has on the host."""
    from provision.roles.dkim import key_path, record_name

    return [{**key, "path": key_path(key), "record": record_name(key)} for key in keys]


def _opendkim_network(value: Any) -> str:
    """A network as opendkim's InternalHosts and ExternalIgnoreList match it.

    opendkim looks a client up by text (dkimf_checkip in its util.c): the
    address masked to each prefix length, written by inet_ntop, then "/N". An
    entry written any other way matches no client: 127.0.0.1/8 (host bits),
    127.0.0.0/255.0.0.0 (a netmask), 2001:DB8:0::/32 (another spelling of an
    IPv6 address). So each network is written as that lookup spells it, with
    the C library's own inet_ntop."""
    import ipaddress
    import socket

    network = ipaddress.ip_network(_line(value), strict=False)
    family = socket.AF_INET6 if network.version == 6 else socket.AF_INET
    return f"{socket.inet_ntop(family, network.network_address.packed)}/{network.prefixlen}"


FILTERS: dict[str, Callable[..., Any]] = {
    "dkim_key_entries": _dkim_key_entries,
    "opendkim_network": _opendkim_network,
    "local_ca_pem": _local_ca_pem,
    "weighted_names": _weighted_names,
    "warmup": _warmup,
    "line": _line,
    "apache_quote": _apache_quote,
    "apache_word": _apache_word,
    "apache_args": _apache_args,
    "apache_handler_modules": _apache_handler_modules,
    "apache_unknown_handlers": _apache_unknown_handlers,
    "apache_duplicate_names": _apache_duplicate_names,
    "postfix_name": _postfix_name,
    "postfix_value": _postfix_value,
    "postfix_option": _postfix_option,
    "lookup_key": _lookup_key,
    "alias_name": _alias_name,
    "alias_targets": _alias_targets,
    "unknown_sender_transports": _unknown_sender_transports,
    "shell_quote": lambda v: shlex.quote(_line(v)),
    "postfix_list": _postfix_list,
    "yesno": _yesno,
    "to_json": lambda v: json.dumps(v, sort_keys=True),
    "regex_replace": _regex_replace,
}
CONTROLLER_FILTERS = ("local_ca_pem",)
"""Filters that read or write the controller's files: role templates only, never inventory values."""


def make_environment(template_dirs: list[Path], immutable: bool = False) -> jinja2.Environment:
    """A sandboxed environment: templates and inventory values are code a stranger may write.

    The sandbox refuses ``__globals__``, ``__class__`` and the like, so a
    value such as ``{{ lipsum.__globals__['os'].popen('id').read() }}`` is an
    error, not a command run on the controller. ``immutable`` also refuses
    changing the lists and dicts it is given (inventory values are shared by
    every host); role templates build their own dicts with ``update``.
    """
    kind = ImmutableSandboxedEnvironment if immutable else SandboxedEnvironment
    env = kind(
        loader=jinja2.FileSystemLoader([str(p) for p in template_dirs]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    env.tests["search"] = lambda value, pattern: re.search(pattern, str(value)) is not None
    env.tests["match"] = lambda value, pattern: re.match(pattern, str(value)) is not None
    env.tests["version"] = _version_test
    return env


def _template_line(exc: BaseException, template: jinja2.Template | None) -> int | None:
    """The template line where a runtime error happened, from the traceback.

    The compiled template's frames carry the template's file name; their
    line numbers are the generated code's, which the template maps back.
    """
    if template is None or template.filename is None:
        return None
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == template.filename and frame.lineno is not None:
            line = template.get_corresponding_lineno(frame.lineno)
    return line


def describe_error(exc: Exception, name: str, template: jinja2.Template | None) -> TemplateError:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(f"template syntax error: {exc.message}", Location(exc.filename or name, exc.lineno))
    line = _template_line(exc, template)
    if isinstance(exc, jinja2.UndefinedError):
        message = f"undefined variable in template {name}: {exc.message}"
    elif isinstance(exc, SecurityError):
        message = f"template {name} is refused by the sandbox: {exc}"
    else:
        message = f"template {name} failed: {exc}"
    filename = template.filename if template is not None else None
    return TemplateError(message, Location(filename or name, line))


# --- the one place that relies on Jinja beyond its documented API -------------
# tests/test_render_api.py checks each behaviour relied on here; pyproject.toml
# pins the Jinja range it was checked with.


def _run_shared(template: jinja2.Template, context: Mapping[str, Any]) -> tuple[str, Context]:
    """Run ``template`` against ``context`` without copying it: (its output, its context).

    ``Template.render`` copies the whole context twice per call; a host's
    context holds every variable of every role and role.yml expressions are
    evaluated dozens of times per host, so for a large fleet the copies were
    most of the render time. ``Template.new_context(vars, shared=True)`` is
    documented to pass the data "as is" to the context: the mapping becomes
    the context's parent, which nothing writes to (a template's assignments go
    to the context's own vars). Running the template on that context is the
    one undocumented call, ``root_render_func`` (what ``render`` itself does,
    without the copies; ``make_module`` would do it too, but builds a module
    on every call, which cost a fifth of a 1,000-host render).
    """
    parent = ChainMap(cast("MutableMapping[str, Any]", context), template.globals)
    render_context = template.new_context(cast("dict[str, Any]", parent), shared=True)
    return template.environment.concat(template.root_render_func(render_context)), render_context


def render_shared(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """``template.render(**context)`` without the copies."""
    return _run_shared(template, context)[0]


def compile_expression(env: jinja2.Environment, source: str) -> jinja2.Template:
    """An expression as a template that assigns it to ``result`` (``{% set result = ... %}``).

    The parsed template must be exactly that one assignment, so an
    expression cannot smuggle in more template code around it.
    """
    parsed = env.parse("{% set result = " + source + " %}")
    body = parsed.body
    if len(body) != 1 or not isinstance(body[0], nodes.Assign) or not isinstance(body[0].target, nodes.Name):
        raise jinja2.TemplateSyntaxError("expected one expression", 1)
    return env.from_string(parsed)


def evaluate_shared(expression: jinja2.Template, context: Mapping[str, Any]) -> Any:
    """The value of an expression made by :func:`compile_expression`."""
    value = _run_shared(expression, context)[1].get_exported()["result"]
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming what is missing
    return value


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LITERALS = frozenset({"true", "false", "none", "True", "False", "None"})


class Renderer:
    """Renders one role's templates and the expressions in its role.yml.

    ``immutable`` (the renderer of inventory values): lists and dicts cannot
    be changed from a template, and filters that touch the controller's
    files (``local_ca_pem``) are not offered.
    """

    def __init__(self, template_dirs: list[Path], immutable: bool = False) -> None:
        self.env = make_environment(template_dirs, immutable)
        if immutable:
            for name in CONTROLLER_FILTERS:
                del self.env.filters[name]
        self._expressions: dict[str, jinja2.Template] = {}
        self._strings: dict[str, jinja2.Template] = {}

    def render_template(self, name: str, context: Mapping[str, Any]) -> str:
        template: jinja2.Template | None = None
        try:
            template = self.env.get_template(name)
            return render_shared(template, context)
        except jinja2.TemplateNotFound as exc:
            missing = exc.name if exc.name and exc.name != name else None
            raise TemplateError(f"template {name!r} not found" + (f" (it includes {missing!r})" if missing else ""), None) from None
        except Exception as exc:
            raise describe_error(exc, name, template) from None

    def render_string(self, text: str, context: Mapping[str, Any], where: str) -> str:
        if "{" not in text and "\r" not in text:
            # No template syntax: Jinja would give the text back as it is (most of a
            # role.yml's modes, owners and names), so it is not rendered at all.
            return text
        try:
            template = self._strings.get(text)
            if template is None:
                template = self._strings[text] = self.env.from_string(text)
            return render_shared(template, context)
        except Exception as exc:
            raise TemplateError(f"cannot render {text!r} in {where}: {_short(exc)}") from None

    def evaluate(self, expression: str, context: Mapping[str, Any], where: str) -> Any:
        """Evaluate a ``when``/``loop`` expression (bare or wrapped in ``{{ }}``)."""
        source = expression.strip()
        if source.startswith("{{") and source.endswith("}}"):
            source = source[2:-2].strip()
        if source in context and source not in _LITERALS and _NAME.fullmatch(source):
            # A bare variable name (when: motd_dynamic) is what Jinja would look up: no template run.
            return context[source]
        try:
            compiled = self._expressions.get(source)
            if compiled is None:
                compiled = self._expressions[source] = compile_expression(self.env, source)
            return evaluate_shared(compiled, context)
        except Exception as exc:
            raise TemplateError(f"cannot evaluate {expression!r} in {where}: {_short(exc)}") from None


def _short(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc)


def contains_template(value: Any) -> bool:
    if isinstance(value, UnsafeText):  # Ansible's !unsafe: never templated
        return False
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(contains_template(v) for v in value)
    if isinstance(value, dict):
        return any(contains_template(v) for v in value.values())
    return False
