"""Talking to the Docker engine; a clear error when none answers."""

from __future__ import annotations

from typing import Any

from provision.errors import ProvisionError
from provision.extras import require

START_HINT = (
    "no Docker engine answers. Start one with: bash scripts/start-docker.sh "
    "(it runs: apt-get install docker.io debootstrap; dockerd --bridge=none --iptables=false --ip6tables=false)"
)


class LabError(ProvisionError):
    """The lab cannot do what was asked (no engine, no image, sshd silent)."""


def docker_client() -> Any:
    docker = require("docker", "the lab")  # slow to import: only the lab needs it
    from docker.errors import DockerException

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except DockerException:
        raise LabError(START_HINT) from None
    return client


def docker_errors() -> Any:
    """``docker.errors``, or the one-line word on the missing ``lab`` extra."""
    return require("docker.errors", "the lab")
