"""The lab's base image: Debian from debootstrap, imported into Docker.

No registry is reachable, so the image is built once per machine from
Debian's mirror and tagged with a hash of its recipe: it is rebuilt only
when the recipe changes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from provision.lab.docker import LabError, docker_errors

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("openssh-server", "python3", "iproute2", "ca-certificates")
REPOSITORY = "provision-lab/debian"
# Each host makes its own SSH host keys when it starts; apt gets the updates
# and security suites as on a real server.
SOURCES = f"""deb {MIRROR} {SUITE} main
deb {MIRROR} {SUITE}-updates main
deb http://deb.debian.org/debian-security {SUITE}-security main
"""
RECIPE_VERSION = "1"


def recipe_tag() -> str:
    recipe = "\n".join([RECIPE_VERSION, SUITE, MIRROR, *PACKAGES, SOURCES])
    return f"{SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def image_name() -> str:
    return f"{REPOSITORY}:{recipe_tag()}"


def image_exists(client: Any) -> bool:
    ImageNotFound = docker_errors().ImageNotFound

    try:
        client.images.get(image_name())
    except ImageNotFound:
        return False
    return True


def build_image(client: Any, say: Any = print) -> str:
    """Build the base image unless it exists; returns its name."""
    name = image_name()
    if image_exists(client):
        return name
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed: apt-get install debootstrap (or run bash scripts/start-docker.sh)")
    with tempfile.TemporaryDirectory(prefix="provision-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        say(f"building lab image {name} with debootstrap (about a minute)...")
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise LabError(f"debootstrap failed (exit {done.returncode}):\n{tail}")
        (rootfs / "etc/apt/sources.list").write_text(SOURCES)
        for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        archive = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(archive), "."], check=True)
        repository, tag = name.split(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=tag)
    say(f"built {name}")
    return name
