"""Exec into a running container through the Docker SDK (``connection: docker``)."""

from __future__ import annotations

import socket
from typing import Any

from provision.connectors.base import CommandResult, ConnectionSettings
from provision.errors import ConnectionFailure
from provision.extras import require


class DockerConnector:
    def __init__(self, settings: ConnectionSettings) -> None:
        # Imported here: the SDK is slow to import, most runs use SSH, and it is an extra.
        docker = require("docker", "connection: docker")
        from docker.errors import DockerException, NotFound

        self.settings = settings
        self.container_name = settings.container or settings.host or settings.name
        try:
            self.client: Any = docker.from_env()
            container = self.client.containers.get(self.container_name)
        except NotFound:
            raise ConnectionFailure(f"no container named {self.container_name!r}") from None
        except DockerException as exc:
            raise ConnectionFailure(f"cannot reach the Docker engine: {exc}") from None
        if container.status != "running":
            raise ConnectionFailure(f"container {self.container_name!r} is {container.status}, not running")

    def run(self, command: str, stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        from docker.utils.socket import STDERR, frames_iter

        api = self.client.api
        user = "" if self.settings.become else (self.settings.user or "")
        exec_id = api.exec_create(self.container_name, ["/bin/sh", "-c", command], stdin=True, user=user)["Id"]
        stream = api.exec_start(exec_id, socket=True)
        raw: socket.socket = getattr(stream, "_sock", stream)
        raw.settimeout(timeout)
        try:
            raw.sendall(stdin)
            raw.shutdown(socket.SHUT_WR)
            stdout, stderr = bytearray(), bytearray()
            for stream_id, chunk in frames_iter(stream, tty=False):
                (stderr if stream_id == STDERR else stdout).extend(chunk)
        except OSError as exc:
            raise ConnectionFailure(f"exec in {self.container_name!r} failed: {exc}") from None
        finally:
            stream.close()
        code = api.exec_inspect(exec_id).get("ExitCode") or 0
        return CommandResult(int(code), bytes(stdout), bytes(stderr))

    def close(self) -> None:
        self.client.close()
