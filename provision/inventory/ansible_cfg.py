"""An existing ``ansible.cfg``, honoured for what provision shares with Ansible.

Found where Ansible looks, first found wins: ``$ANSIBLE_CONFIG`` (a file, or
a folder holding ansible.cfg), ``./ansible.cfg`` (skipped, with a warning,
in a world-writable folder, as Ansible does: anyone could plant one there),
``~/.ansible.cfg``, ``/etc/ansible/ansible.cfg``. Each setting's
``ANSIBLE_*`` environment variable wins over the file. Paths in the file are
relative to the file's folder; in the environment, to the current folder.
The command line wins over both.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision.errors import Location, ProvisionError

_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE = frozenset({"n", "no", "off", "0", "false", "f", ""})


class ConfigError(ProvisionError):
    """An ansible.cfg that cannot be read, or a setting with a wrong value."""


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected a boolean (yes/no, true/false, on/off, 1/0), got {text!r}")


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _path(base: Path) -> Callable[[str], str]:
    def resolve(text: str) -> str:
        expanded = os.path.expanduser(os.path.expandvars(text.strip()))
        return os.path.normpath(os.path.join(base, expanded))

    return resolve


def _string(text: str) -> str:
    return text.strip()


def _list(text: str) -> list[str]:
    return [item.strip().strip("'\"") for item in text.split(",") if item.strip()]


@dataclass(frozen=True)
class Spec:
    section: str
    key: str
    env: str
    kind: str  # bool, int, str, path, pathlist, list
    description: str


# The settings provision shares with Ansible (Ansible's names, sections and variables).
SPECS: dict[str, Spec] = {
    "inventory": Spec("defaults", "inventory", "ANSIBLE_INVENTORY", "pathlist", "inventory sources when no -i is given"),
    "remote_user": Spec("defaults", "remote_user", "ANSIBLE_REMOTE_USER", "str", "SSH user when neither -u nor ansible_user is set"),
    "private_key_file": Spec("defaults", "private_key_file", "ANSIBLE_PRIVATE_KEY_FILE", "path", "SSH key when --private-key is not given"),
    "host_key_checking": Spec(
        "defaults", "host_key_checking", "ANSIBLE_HOST_KEY_CHECKING", "bool", "false: record unknown host keys (a changed one is refused)"
    ),
    "forks": Spec("defaults", "forks", "ANSIBLE_FORKS", "int", "hosts at once when -f is not given"),
    "become": Spec("privilege_escalation", "become", "ANSIBLE_BECOME", "bool", "become root when -b is not given"),
    "vault_password_file": Spec(
        "defaults", "vault_password_file", "ANSIBLE_VAULT_PASSWORD_FILE", "path", "vault password file, after those given"
    ),
    "vault_identity_list": Spec(
        "defaults", "vault_identity_list", "ANSIBLE_VAULT_IDENTITY_LIST", "list", "vault ids (label@source), before those given"
    ),
    "ask_vault_pass": Spec("defaults", "ask_vault_pass", "ANSIBLE_ASK_VAULT_PASS", "bool", "ask for the vault password"),
    "vault_id_match": Spec("defaults", "vault_id_match", "ANSIBLE_VAULT_ID_MATCH", "bool", "only try the password whose vault id matches"),
}


@dataclass(frozen=True)
class Setting:
    value: Any
    origin: str
    """Where the value came from: ``FILE [section] key`` or ``$ANSIBLE_...``."""


@dataclass
class AnsibleConfig:
    path: Path | None = None
    settings: dict[str, Setting] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def get(self, name: str, default: Any = None) -> Any:
        setting = self.settings.get(name)
        return default if setting is None else setting.value


def find_config_file(env: Mapping[str, str], cwd: Path, home: Path) -> tuple[Path | None, list[str]]:
    """The ansible.cfg Ansible would use, and any warning about one it skipped."""
    candidates: list[Path] = []
    warnings: list[str] = []
    from_env = env.get("ANSIBLE_CONFIG")
    env_path = None
    if from_env is not None:
        path = Path(os.path.expanduser(from_env))
        env_path = path / "ansible.cfg" if path.is_dir() else path
        candidates.append(env_path)
    here = cwd / "ansible.cfg"
    try:
        world_writable = bool(cwd.stat().st_mode & stat.S_IWOTH)
    except OSError:
        world_writable = True
    if not world_writable:
        candidates.append(here)
    candidates += [home / ".ansible.cfg", Path("/etc/ansible/ansible.cfg")]
    found = next((c for c in candidates if c.is_file() and os.access(c, os.R_OK)), None)
    if world_writable and here.exists() and found != env_path:
        warnings.append(f"ignoring {here}: the folder is world-writable, so anyone could have put it there (as Ansible does)")
    return found, warnings


def _convert(spec: Spec, text: str, base: Path) -> Any:
    if spec.kind == "bool":
        return _boolean(text)
    if spec.kind == "int":
        return _integer(text)
    if spec.kind == "path":
        return _path(base)(text)
    if spec.kind == "pathlist":
        return [_path(base)(item) for item in text.split(",") if item.strip()]
    if spec.kind == "list":
        return _list(text)
    return _string(text)


def read_config_file(path: Path) -> configparser.ConfigParser:
    # As Ansible: ';' starts an inline comment, '%' interpolates (write '%%' for a percent sign).
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",))
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read ansible.cfg: {exc}", Location(str(path))) from None
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        message = str(exc).splitlines()[0]
        raise ConfigError(f"ansible.cfg is not valid INI: {message}", Location(str(path), line)) from None
    return parser


def load_ansible_config(env: Mapping[str, str] | None = None, cwd: Path | None = None, home: Path | None = None) -> AnsibleConfig:
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    home = home or Path(os.path.expanduser("~"))
    path, warnings = find_config_file(env, cwd, home)
    config = AnsibleConfig(path, {}, warnings)
    parser = read_config_file(path) if path is not None else None
    for name, spec in SPECS.items():
        if spec.env in env:
            origin, text, base = f"${spec.env}", env[spec.env], cwd
        elif parser is not None and path is not None and parser.has_option(spec.section, spec.key):
            origin, base = f"{path} [{spec.section}] {spec.key}", path.parent
            try:
                text = parser.get(spec.section, spec.key)
            except configparser.Error as exc:
                raise ConfigError(f"[{spec.section}] {spec.key}: {str(exc).splitlines()[0]}", Location(str(path))) from None
        else:
            continue
        try:
            config.settings[name] = Setting(_convert(spec, text, base), origin)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    return config
