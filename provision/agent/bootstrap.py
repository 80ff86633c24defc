"""The agent's bootstrap: the ``python3 -c`` program of every agent call.

It loads the agent's modules, compiled, from a cache on the host named by
the hash of their source, so a run neither re-sends nor re-compiles them,
then hands standard input (the JSON request) to ``core.main()``.

Arguments: HASH ROOT SIZE NAME:SIZE... ``SIZE`` is the size of the
zlib-compressed sources that come first on standard input (0: none were
sent, use the cache); ``NAME:SIZE`` the modules and their source sizes, in
order. ``HASH`` is the SHA-256 of ``"NAME:SIZE NAME:SIZE..."`` followed by
the sources: sources sent with the call are checked against it before they
are compiled, and the cache is kept in a folder of that name.

The cache (``ROOT/var/lib/provision/agent/HASH/`` for root, else
``~/.cache/provision/agent/HASH/``) holds one file per Python version: the
marshalled code objects with the SHA-256 of the hash and that data in front.
It is used only when the folders and the file belong to the agent's user and
nobody else can write them, and only when the digest matches: a half-written,
truncated or altered file is ignored, then replaced when sources come with
the call. Without sources and without a valid cache the bootstrap answers
``{"ok": false, "agent_missing": true}`` and the controller sends them.
Whether the call left a valid cache behind is said on standard error
(``provision-agent-cache: ok``) so the controller knows what to send next.

Compatible with the oldest python3 a supported Debian ships; run with
``-I -S -B`` (no site packages, environment or bytecode writes: the agent
needs only the standard library).
"""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, List, Optional


def _private(path: str, directory: bool) -> bool:
    """``path`` exists, is ours, and only we can write it."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    kind = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    return kind and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def _load(base: str, folder: str, path: str, digest: str, names: List[str]) -> Optional[List[Any]]:
    if not (_private(base, True) and _private(folder, True) and _private(path, False)):
        return None
    with open(path, "rb") as handle:
        data = handle.read()
    body = data[32:]
    if hashlib.sha256(digest.encode() + body).digest() != data[:32]:
        return None
    try:
        saved, codes = marshal.loads(body)
    except (EOFError, ValueError, TypeError):
        return None
    if saved != [digest, names] or not isinstance(codes, list):
        return None
    return codes


def _store(base: str, folder: str, path: str, digest: str, names: List[str], codes: List[Any]) -> None:
    for directory in (base, folder):
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
    body = marshal.dumps([[digest, names], codes])
    scratch = "%s.%d.tmp" % (path, os.getpid())
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(hashlib.sha256(digest.encode() + body).digest() + body)
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    # Folders of agents not sent for a week (other provision versions) go.
    for other in os.listdir(base):
        if other != os.path.basename(folder) and len(other) == 64:
            aged = os.path.join(base, other)
            if os.path.getmtime(aged) < os.path.getmtime(folder) - 7 * 86400:
                import shutil

                shutil.rmtree(aged, ignore_errors=True)


def _compiled(sources: bytes, modules: List[Any]) -> List[Any]:
    codes, start = [], 0
    for name, size in modules:
        codes.append(compile(sources[start : start + size], name, "exec"))
        start += size
    return codes


def boot() -> None:
    digest, root, sent = sys.argv[1], sys.argv[2], int(sys.argv[3])
    modules = [(name, int(size)) for name, size in (a.rsplit(":", 1) for a in sys.argv[4:])]
    names = [name for name, _ in modules]
    if os.geteuid() == 0:
        base = os.path.join(root, "var/lib/provision/agent")
    else:
        base = os.path.join(os.path.expanduser("~"), ".cache/provision/agent")
    folder = os.path.join(base, digest)
    path = os.path.join(folder, "%s.code" % (sys.implementation.cache_tag or "python"))
    codes = _load(base, folder, path, digest, names)
    if sent:
        import zlib

        try:
            sources = zlib.decompress(sys.stdin.buffer.read(sent))
        except zlib.error:
            sources = b""
        manifest = " ".join("%s:%d" % module for module in modules).encode()
        if hashlib.sha256(manifest + sources).hexdigest() != digest:
            sys.stdout.write('{"ok": false, "error": "the agent arrived damaged (hash mismatch)"}')
            return
        note = "ok"
        if codes is None:
            codes = _compiled(sources, modules)
            try:
                _store(base, folder, path, digest, names, codes)
            except OSError as exc:
                note = "not kept (%s)" % exc
        sys.stderr.write("provision-agent-cache: %s\n" % note)
    if codes is None:
        sys.stdout.write('{"ok": false, "agent_missing": true, "error": "the agent is not cached on this host"}')
        return
    loaded = sys.modules
    for package in ("provision", "provision.agent"):
        loaded.setdefault(package, types.ModuleType(package))
    for name, code in zip(names, codes):  # noqa: B905 (strict= is Python 3.10+, hosts may have 3.9)
        module = loaded.setdefault(name, types.ModuleType(name))
        exec(code, module.__dict__)
    loaded["provision.agent.core"].main()


if __name__ == "__main__":
    boot()
