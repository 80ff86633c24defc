"""SSH through OpenSSH's own ``ssh`` client: the user's ssh_config, multiplexed.

Every command is one ``ssh`` process. It reads a small config file that
provision writes into its private control folder: provision's rules first
(in ssh_config the first value read wins, so a user's file cannot loosen
them), then ``Include`` of the user's ``~/.ssh/config`` (or the host's
``ssh_config`` variable) and of ``/etc/ssh/ssh_config``, so ``Host``
aliases, ``ProxyJump``, ``IdentityAgent``, certificates, ``Match`` blocks
and GSSAPI work as they do for the user's own ``ssh``. The file is passed
with ``-F``, which ssh hands on to the ``ssh`` it starts for a
``ProxyJump``: a jump host's key is checked by the same rules.

The rules: host keys strictly checked against the chosen known_hosts
(``accept-new`` only with ``--accept-new-host-keys``; a changed key is
always refused), no prompts (``BatchMode``), and connections multiplexed
(``ControlMaster auto``, ``ControlPersist``), with the control sockets in a
private 0700 folder, so a run within the persistence window opens a channel
on a connection that is already authenticated instead of a new connection.
``provision ssh close`` ends them.

ssh's own messages go to a log file (``-E``) so that standard error is the
remote command's alone, and a failure to connect is told apart from a
command that failed.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from provision.connectors.base import CommandResult, ConnectionSettings
from provision.errors import ConnectionFailure, HostKeyError, ProvisionError

DEFAULT_PERSIST = 60
"""Seconds a connection stays open after its last command (Ansible's default too)."""
CONNECT_TIMEOUT = 10
SOCKET_PATH_MAX = 107
"""sun_path is 108 bytes; ssh adds a 17-character suffix while it binds."""


@cache
def ssh_client() -> str | None:
    """The ``ssh`` client on PATH, if any (without one, Paramiko is used)."""
    return shutil.which("ssh")


def _owned_private_folder(path: Path) -> Path:
    """Make ``path`` (and missing parents) 0700; refuse one that is not ours or not a folder."""
    missing = []
    probe = path
    while not probe.exists() and not probe.is_symlink():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another run made it at the same moment; checked below
            folder.mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise ProvisionError(f"{path} is not a folder; refusing to keep SSH control sockets there")
    if info.st_uid != os.geteuid():
        raise ProvisionError(f"{path} belongs to uid {info.st_uid}, not to you; refusing to keep SSH control sockets there")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def runtime_folder() -> Path:
    """The user's runtime folder: $XDG_RUNTIME_DIR, /run/user/UID, /run for root, else the temp folder."""
    uid = os.geteuid()
    candidates = [os.environ.get("XDG_RUNTIME_DIR") or "", f"/run/user/{uid}", "/run" if uid == 0 else ""]
    for candidate in candidates:
        if candidate and os.path.isabs(candidate) and os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return Path(candidate)
    return Path(tempfile.gettempdir()) / f"provision-{uid}"


def control_folder() -> Path:
    """The private 0700 folder for control sockets and the generated config."""
    folder = runtime_folder() / "provision" / "ssh"
    if len(str(folder)) + 1 + 40 + 1 + 8 + 17 > SOCKET_PATH_MAX:
        folder = Path(tempfile.gettempdir()) / f"provision-{os.geteuid()}" / "ssh"
    _owned_private_folder(folder.parent)
    return _owned_private_folder(folder)


def _config_value(value: str, what: str, tokens: bool = True, suffix: str = "") -> str:
    """A path as one quoted ssh_config value; ``%`` escaped where ssh expands tokens (``suffix`` may hold some)."""
    if any(c in value for c in '"\n\r\0'):
        raise ProvisionError(f"{what} {value!r} contains a quote or a line break, which ssh_config cannot hold")
    if not tokens and "%" in value:
        raise ProvisionError(f"{what} {value!r} contains '%', which ssh would read as a token here")
    return '"' + value.replace("%", "%%") + suffix + '"'


@dataclass(frozen=True)
class Policy:
    """What decides a connection's rules; hosts sharing one share a config file and their sockets' suffix."""

    known_hosts: str | None
    accept_new: bool
    user_config: str | None
    persist: int
    files_seen: str = ""
    """The known_hosts and ssh_config files as they are now (inode, size, mtime): a shared connection
    made before either changed is not used (a key removed from known_hosts takes effect at once)."""

    @property
    def ident(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:8]

    def config_text(self, folder: Path) -> str:
        lines = [
            "# Written by provision. Its rules come first (the first value ssh reads wins),",
            "# then the user's and the system's ssh_config.",
            "Host *",
            f"  StrictHostKeyChecking {'accept-new' if self.accept_new else 'yes'}",
            "  BatchMode yes",
            # ssh prints the host's Banner straight onto standard error (at LogLevel INFO
            # and above), which must be the remote command's alone; errors and fatal
            # messages (denials, keys it cannot load, host keys) still reach the -E log.
            "  LogLevel ERROR",
            # Keys are recorded only with --accept-new-host-keys, never behind the user's back.
            "  UpdateHostKeys no",
            "  RequestTTY no",
            "  RemoteCommand none",
            "  PermitLocalCommand no",
            "  ClearAllForwardings yes",
            f"  ConnectTimeout {CONNECT_TIMEOUT}",
        ]
        if self.known_hosts:
            # The chosen file is the whole truth: not the system's list beside it.
            lines += [f"  UserKnownHostsFile {_config_value(self.known_hosts, 'known_hosts')}", "  GlobalKnownHostsFile /dev/null"]
        if self.persist > 0:
            # Each inventory host's own socket is given on the command line; this one serves the
            # hops ssh reaches by itself (a ProxyJump's host), so one bastion connection is shared.
            socket = _config_value(str(folder), "control folder", suffix=f"/jump-%C.{self.ident}")
            lines += ["  ControlMaster auto", f"  ControlPath {socket}", f"  ControlPersist {self.persist}"]
        else:
            lines += ["  ControlMaster no", "  ControlPath none"]
        lines += [
            f"Include {_config_value(self.user_config or '~/.ssh/config', 'ssh_config', tokens=False)}",
            "Include /etc/ssh/ssh_config",
            # Defaults below the user's files: a value set there wins. The hybrid
            # post-quantum exchange costs ~0.1 s of CPU on each side per connection
            # here (Paramiko never offered it); set KexAlgorithms to prefer it.
            "Host *",
            "  KexAlgorithms ^curve25519-sha256,curve25519-sha256@libssh.org",
        ]
        return "\n".join(lines) + "\n"

    def config_file(self, folder: Path) -> Path:
        return _config_file(self, folder)


CONFIG_KEPT_SECONDS = 86400


@cache
def _config_file(policy: Policy, folder: Path) -> Path:
    """The policy's config file, written once per process (hosts share it); old ones pruned."""
    text = policy.config_text(folder)
    path = folder / f"config-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    try:
        current = path.read_text()
    except FileNotFoundError:
        current = None
    if current != text:
        scratch = folder / f".{path.name}.{os.getpid()}.{threading.get_ident()}"
        descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(scratch, path)
        # Files of rules no longer used (known_hosts edited since): the ssh of a shared
        # connection reads its file again only when it starts a jump host's ssh, within the day.
        for old in folder.glob("config-*"):
            with contextlib.suppress(FileNotFoundError):
                if old != path and old.stat().st_mtime < time.time() - CONFIG_KEPT_SECONDS:
                    old.unlink()
    else:
        os.utime(path)
    return path


def policy_for(settings: ConnectionSettings) -> Policy:
    known_hosts = settings.options.get("known_hosts") or None
    seen = [_file_state(known_hosts or "~/.ssh/known_hosts"), _file_state(settings.ssh_config or "~/.ssh/config")]
    return Policy(
        known_hosts=known_hosts,
        accept_new=settings.options.get("accept_new_host_keys") == "yes",
        user_config=settings.ssh_config,
        persist=settings.control_persist,
        files_seen=" ".join(seen),
    )


def _file_state(path: str) -> str:
    try:
        info = os.stat(os.path.expanduser(path))
    except OSError:
        return "-"
    return f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def _token_safe(value: str) -> str:
    return value.replace("%", "%%")


def control_socket(settings: ConnectionSettings, folder: Path) -> Path | None:
    """The host's control socket: named by provision (not by ssh's %C) so that provision can
    tell whether a connection is open, and what it already did on it, without running ssh."""
    policy = policy_for(settings)
    if policy.persist <= 0:
        return None
    return folder / f"{_host_ident(settings)}.{policy.ident}"


def _host_ident(settings: ConnectionSettings) -> str:
    identity = repr((settings.host or settings.name, settings.port, settings.user, settings.ssh_key, settings.proxy_jump))
    return hashlib.sha256(identity.encode()).hexdigest()[:40]


def ssh_arguments(settings: ConnectionSettings, folder: Path) -> list[str]:
    """``ssh`` and its options for this host, up to (not including) ``--`` and the destination."""
    client = ssh_client() or "ssh"
    config = policy_for(settings).config_file(folder)
    argv = [client, "-F", str(config), "-T"]
    socket = control_socket(settings, folder)
    if socket is not None:
        argv += ["-o", f"ControlPath={_config_value(str(socket), 'control folder')}"]
    # Only what the inventory says: anything left unset comes from ssh_config.
    if settings.port is not None:
        argv += ["-p", str(settings.port)]
    if settings.user:
        argv += ["-l", settings.user]
    if settings.ssh_key:
        # -o, not -i: ssh checks an -i file before expanding its %-tokens, so "%%" would never be found.
        argv += ["-o", f"IdentityFile={_config_value(settings.ssh_key, 'ssh_key')}"]
    if settings.proxy_jump:
        argv += ["-o", "ProxyCommand=" + _jump_command(settings, client, config)]
    return argv


def _hop_arguments(host: str, jump: str, client: str, config: Path, user: str | None = None, key: str | None = None) -> list[str]:
    """``ssh`` options and destination for a ``[user@]name[:port]`` hop (``user``/``key``: the defaults)."""
    jump_user, _, jump_host = jump.rpartition("@")
    jump_name, _, jump_port = jump_host.rpartition(":") if jump_host.count(":") == 1 else (jump_host, "", "")
    if not jump_name or any(c.isspace() for c in jump) or jump_name.startswith("-"):
        raise ProvisionError(f"host {host}: proxy_jump {jump!r} is not [user@]host[:port]")
    parts = [client, "-F", str(config)]
    if jump_port:
        if not jump_port.isdigit():
            raise ProvisionError(f"host {host}: proxy_jump {jump!r} has a port that is not a number")
        parts += ["-p", jump_port]
    if jump_user or user:
        parts += ["-l", jump_user or str(user)]
    if key:
        parts += ["-o", f"IdentityFile={_config_value(key, 'ssh_key')}"]
    return [*parts, "--", jump_name]


def _jump_command(settings: ConnectionSettings, client: str, config: Path) -> str:
    """A jump host as Paramiko reached it: the target's user and key unless the jump says otherwise."""
    parts = _hop_arguments(settings.name, str(settings.proxy_jump), client, config, settings.user, settings.ssh_key)
    parts[-2:-2] = ["-W", "[%h]:%p"]
    # ssh expands %-tokens in ProxyCommand, then runs it with the shell (so an escaped
    # "%%" in IdentityFile is escaped once more, for the jump's own expansion).
    return " ".join(part if part == "[%h]:%p" else _token_safe(shlex.quote(part)) for part in parts)


_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed")
_UNKNOWN = re.compile(r"No \S+ host key is known for|Host key verification failed")
_FINGERPRINT = re.compile(r"(SHA256:[A-Za-z0-9+/=]+)")
_BENIGN = re.compile(r"^Warning: Permanently added ")
_MARK = re.compile(r"^[0-9a-f]{40}\.[0-9a-f]{8}\.")
_DENIED = re.compile(r"^(?:(?P<user>\S+)@\S+: )?Permission denied \((?P<methods>[^)]*)\)")
_KEY_SKIPPED = re.compile(r"^Load key ")


def _ssh(
    folder: Path, argv: list[str], stdin: bytes, timeout: float | None, running: set[subprocess.Popen[bytes]] | None = None
) -> tuple[int, bytes, bytes, str]:
    """Run ``ssh`` (``argv``) with its own messages in a log file: exit code, stdout, stderr, log.

    While it runs, the process is in ``running``, so that closing the
    connector (Ctrl-C's let-go) can end it."""
    descriptor, log_path = tempfile.mkstemp(prefix="log-", dir=folder)
    os.close(descriptor)
    try:
        # Standard error into a file, not a pipe: nothing ssh leaves behind (a shared
        # connection, a jump host's ssh) can then keep the call waiting for its end.
        with tempfile.TemporaryFile(dir=folder) as errors:
            process = subprocess.Popen([*argv[:1], "-E", log_path, *argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
            if running is not None:
                running.add(process)
            try:
                stdout, _ = process.communicate(stdin, timeout=timeout)
            except BaseException:
                process.kill()
                process.communicate()
                raise
            finally:
                if running is not None:
                    running.discard(process)
            errors.seek(0)
            stderr = errors.read()
        log = Path(log_path).read_text("utf-8", "replace")
    finally:
        os.unlink(log_path)
    return process.returncode, stdout, stderr, log


def _failed(log: str) -> bool:
    """ssh said more than a benign warning: exit 255 was its own, not the remote command's."""
    return any(line.strip() and not _BENIGN.match(line) for line in log.splitlines())


Tried = Callable[[], "tuple[str, str | None]"]
"""The key(s) authentication used, and why the inventory's key file was unusable (None: it was not)."""


def _classified(text: str, target: str, settings: ConnectionSettings, tried: Tried) -> ConnectionFailure:
    known_hosts = settings.options.get("known_hosts") or "your known_hosts"
    found = _FINGERPRINT.search(text)
    fingerprint = f" (offered {found.group(1)})" if found else ""
    if _CHANGED.search(text):
        return HostKeyError(
            f"host key of {target} has CHANGED{fingerprint}; refusing to connect: "
            f"if the change is legitimate, remove the old key from {known_hosts}"
        )
    if _UNKNOWN.search(text):
        return HostKeyError(
            f"host key of {target} is not in {known_hosts}{fingerprint}; "
            "refusing to connect (add it to known_hosts, or run with --accept-new-host-keys)"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip() and not _BENIGN.match(line)]
    denied = next((found for found in map(_DENIED.search, lines) if found), None)
    if denied:
        # The reason is ssh's own denial line, never merely the last line seen: that can
        # be the host's Banner text or a jump host's output on standard error.
        who = denied.group("user") or settings.user or "the default user"
        key, why = tried()
        # What ssh said of a key it could not load (bad permissions), and what ssh-keygen finds.
        notes = dict.fromkeys([line for line in lines if _KEY_SKIPPED.match(line)] + ([why] if why else []))
        reason = "; ".join([f"Permission denied ({denied.group('methods')})", *notes])
        return ConnectionFailure(f"authentication to {target} as {who} failed with {key}: {reason}")
    return ConnectionFailure(f"cannot connect to {target}: {lines[-1] if lines else 'ssh failed'}")


def _key_problem(key: str) -> str | None:
    """Why ssh, which never prompts here, could not use the private key file ``key`` (None: it could)."""
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        return None
    try:
        # -y reads the private key and prints its public half; -P "" says: no passphrase.
        done = subprocess.run(
            [keygen, "-y", "-P", "", "-f", os.path.expanduser(key)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CONNECT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode == 0:
        return None
    if "passphrase" in done.stderr:
        return f"the key {key} is encrypted: load it into ssh-agent, or give a key without a passphrase"
    said = [line.strip() for line in done.stderr.splitlines() if line.strip().startswith("Load key")]
    return said[-1] if said else None


def _keys_offered(argv: list[str], destination: str) -> str:
    """The keys ssh offered where the inventory sets none: the files ssh_config names that exist, and the agent's."""
    shown = subprocess.run([*argv, "-G", "--", destination], capture_output=True, text=True, check=False, timeout=CONNECT_TIMEOUT)
    files = [line.split(" ", 1)[1] for line in shown.stdout.splitlines() if line.startswith("identityfile ")]
    offered = [path for path in files if os.path.isfile(os.path.expanduser(path))]
    if os.environ.get("SSH_AUTH_SOCK"):
        offered.append("the SSH agent's keys")
    if not offered:
        return "no key (no ssh_key set, none of ssh_config's identity files exists, no SSH agent)"
    listed = offered[0] if len(offered) == 1 else ", ".join(offered[:-1]) + " and " + offered[-1]
    return f"{listed} (no ssh_key set: the keys ssh_config gives)"


class OpenSshConnector:
    """Runs each command as one ``ssh`` process over the host's shared connection."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.folder = control_folder()
        self.arguments = ssh_arguments(settings, self.folder)
        self.socket = control_socket(settings, self.folder)
        self.destination = settings.host or settings.name
        if self.destination.startswith("-"):
            raise ProvisionError(f"host {settings.name}: address {self.destination!r} starts with '-'")
        # A connection is made by the first command, not here: a warm run costs no extra process.
        self._running: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        try:
            code, stdout, stderr, log = _ssh(self.folder, [*self.arguments, "--", self.destination, command], stdin, timeout, self._running)
        except subprocess.TimeoutExpired:
            raise ConnectionFailure(f"a command on {self.settings.name} timed out after {timeout:g}s") from None
        if self._closed:
            raise ConnectionFailure(f"the connection to {self.settings.name} was closed while a command ran")
        if code == 255 and _failed(log):
            target = self.destination + (f":{self.settings.port}" if self.settings.port else "")
            # Through a jump host ssh only sees the connection close (the jump's own ssh reports
            # nothing when the connection is shared): ask that host directly why.
            raise self._through_jump() or _classified(log + "\n" + stderr.decode("utf-8", "replace"), target, self.settings, self._tried)
        return CommandResult(code, stdout, stderr)

    def _tried(self) -> tuple[str, str | None]:
        key = self.settings.ssh_key
        if key:
            return f"the key {key}", _key_problem(key)
        return _keys_offered(self.arguments, self.destination), None

    def _through_jump(self) -> ConnectionFailure | None:
        client, config = self.arguments[0], Path(self.arguments[2])
        jump = self.settings.proxy_jump
        if not jump:
            shown = subprocess.run([*self.arguments, "-G", "--", self.destination], capture_output=True, text=True, check=False)
            jump = next((line.split(" ", 1)[1] for line in shown.stdout.splitlines() if line.startswith("proxyjump ")), None)
            if not jump or jump == "none":
                return None
            hop = _hop_arguments(self.settings.name, jump.split(",")[0], client, config)
        else:
            hop = _hop_arguments(self.settings.name, jump, client, config, self.settings.user, self.settings.ssh_key)
        hop[-2:-2] = ["-o", "ControlPath=none"]
        try:
            code, _, stderr, log = _ssh(self.folder, [*hop, "true"], b"", CONNECT_TIMEOUT * 2)
        except subprocess.TimeoutExpired:
            return ConnectionFailure(f"jump host {jump} did not answer within {CONNECT_TIMEOUT * 2}s")
        if code != 255 or not _failed(log):
            return None
        key = self.settings.ssh_key if self.settings.proxy_jump else None  # the key the hop was given, if any

        def tried() -> tuple[str, str | None]:
            return (f"the key {key}", _key_problem(key)) if key else (_keys_offered(hop[:-2], hop[-1]), None)

        failure = _classified(log + "\n" + stderr.decode("utf-8", "replace"), hop[-1], self.settings, tried)
        return type(failure)(f"through jump host {jump}: {failure}")

    def close(self) -> None:
        """End this connector's commands still running (Ctrl-C lets go of them); the shared
        connection itself stays for ControlPersist seconds (``provision ssh close`` ends it).

        What the host runs goes on without its client: the agent finishes a
        commit it started (its journal covers a kill too), as with Paramiko."""
        self._closed = True
        for process in list(self._running):
            with contextlib.suppress(OSError):
                process.terminate()

    def remembers(self, key: str) -> bool:
        """Whether ``remember(key)`` was said during the life of the connection open now."""
        if self.socket is None:
            return False
        try:
            opened = os.lstat(self.socket)
            said = os.lstat(f"{self.socket}.{key}")
        except OSError:
            return False
        # A mark older than the socket belongs to a connection that has since closed.
        return stat.S_ISSOCK(opened.st_mode) and said.st_mtime_ns >= opened.st_mtime_ns

    def remember(self, key: str, present: bool) -> None:
        """Note ``key`` (say, an agent cached on the host) for as long as this connection lives."""
        if self.socket is None or not self.socket.exists():
            return
        mark = Path(f"{self.socket}.{key}")
        if not present:
            mark.unlink(missing_ok=True)
            return
        descriptor = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.close(descriptor)
        os.utime(mark)


def _close_socket(socket: Path) -> bool:
    """End the master behind ``socket``; False if none was running. Its marks go too."""
    running = False
    if socket.exists():
        path = _config_value(str(socket), "control socket")
        argv = [ssh_client() or "ssh", "-F", "/dev/null", "-o", f"ControlPath={path}", "-O", "exit", "--", "closing"]
        running = subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0
        socket.unlink(missing_ok=True)  # a master that died without removing it
    for mark in socket.parent.glob(glob.escape(socket.name) + ".*"):
        mark.unlink(missing_ok=True)
    return running


def _sockets(folder: Path) -> list[Path]:
    found = []
    for entry in sorted(folder.iterdir()):
        with contextlib.suppress(FileNotFoundError):  # gone meanwhile: its master closed
            if stat.S_ISSOCK(os.lstat(entry).st_mode):
                found.append(entry)
    return found


def close_connection(settings: ConnectionSettings) -> bool:
    """End the shared connections to one host, made under any rules (known_hosts...); False if there was none."""
    prefix = _host_ident(settings) + "."
    sockets = [socket for socket in _sockets(control_folder()) if socket.name.startswith(prefix)]
    return sum(_close_socket(socket) for socket in sockets) > 0


def close_all() -> int:
    """End every shared connection in the control folder (jump hosts' too); how many were open."""
    folder = control_folder()
    closed = sum(_close_socket(socket) for socket in _sockets(folder))
    for entry in folder.iterdir():  # marks whose connection is gone (never another run's log file)
        if _MARK.match(entry.name) and not (folder / entry.name.rsplit(".", 1)[0]).exists():
            entry.unlink(missing_ok=True)
    return closed
