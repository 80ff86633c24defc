"""The lab's base images: Debian from debootstrap, imported into Docker.

No registry is reachable, so each image is built once per machine from
Debian's mirror and tagged with its suite and a hash of its recipe: it is
rebuilt only when the recipe changes. One image per suite (bullseye,
bookworm, trixie), so a lab can run the releases a real fleet runs side by
side. Builds of one image are serialised by a lock file, so two test runs
on one machine build it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from provision.lab.docker import LabError, docker_errors

SUITES = ("bullseye", "bookworm", "trixie")
"""The Debian releases the lab builds, oldest first (Debian 11, 12, 13)."""
DEFAULT_SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
PACKAGES = ("openssh-server", "python3", "iproute2", "ca-certificates")
REPOSITORY = "provision-lab/debian"
RECIPE_VERSION = "1"
LOCK_DIR = Path(os.environ.get("PROVISION_LAB_LOCK_DIR", "/run/lock"))


def check_suite(suite: str) -> str:
    if suite not in SUITES:
        raise LabError(f"unknown suite {suite!r}: the lab builds {', '.join(SUITES)}")
    return suite


def sources(suite: str) -> str:
    """apt's sources inside the image: the updates and security suites too,
    as on a real server. Each host makes its own SSH host keys at start."""
    return f"""deb {MIRROR} {suite} main
deb {MIRROR} {suite}-updates main
deb {SECURITY_MIRROR} {suite}-security main
"""


def recipe_tag(suite: str = DEFAULT_SUITE) -> str:
    # The recipe string is the one the single-suite lab hashed, so the
    # bookworm image already built on a machine keeps its tag.
    recipe = "\n".join([RECIPE_VERSION, suite, MIRROR, *PACKAGES, sources(suite)])
    return f"{suite}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def image_name(suite: str = DEFAULT_SUITE) -> str:
    return f"{REPOSITORY}:{recipe_tag(check_suite(suite))}"


def image_exists(client: Any, suite: str = DEFAULT_SUITE) -> bool:
    ImageNotFound = docker_errors().ImageNotFound

    try:
        client.images.get(image_name(suite))
    except ImageNotFound:
        return False
    return True


@contextlib.contextmanager
def _build_lock(tag: str) -> Iterator[None]:
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(LOCK_DIR / f"provision-lab-{tag}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def build_image(client: Any, say: Any = print, suite: str = DEFAULT_SUITE) -> str:
    """Build the suite's base image unless it exists; returns its name."""
    name = image_name(suite)
    if image_exists(client, suite):
        return name
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed: apt-get install debootstrap (or run bash scripts/start-docker.sh)")
    with _build_lock(recipe_tag(suite)):
        if image_exists(client, suite):  # another run built it while this one waited
            return name
        _debootstrap_and_import(client, say, suite, name)
    say(f"built {name}")
    return name


def _debootstrap_and_import(client: Any, say: Any, suite: str, name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="provision-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        say(f"building lab image {name} with debootstrap (about a minute)...")
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(rootfs), MIRROR]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise LabError(f"debootstrap {suite} failed (exit {done.returncode}):\n{tail}")
        (rootfs / "etc/apt/sources.list").write_text(sources(suite))
        for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        archive = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(archive), "."], check=True)
        repository, tag = name.split(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag)
