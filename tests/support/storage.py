"""A real storage server on loopback for the team's DVC remote: WsgiDAV serving WebDAV, with a user and password."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

USER, PASSWORD = "team", "secret"


@dataclass(frozen=True)
class WebDavServer:
    address: str  # webdav://127.0.0.1:<port>
    folder: Path  # what it serves: a store's objects are files under it

    def new_store(self, name: str) -> str:
        """The URL of a new, empty store on the server (WebDAV needs the folder to exist)."""
        (self.folder / name).mkdir()
        return f"{self.address}/{name}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def closed_port_url() -> str:
    """A WebDAV URL on a loopback port nothing listens on: an unreachable remote."""
    return f"webdav://127.0.0.1:{free_port()}/store"


@contextlib.contextmanager
def webdav_server(root: Path) -> Iterator[WebDavServer]:
    folder, port = root / "served", free_port()
    folder.mkdir()
    config = {
        "host": "127.0.0.1",
        "port": port,
        "provider_mapping": {"/": str(folder)},
        "http_authenticator": {"domain_controller": None, "accept_basic": True, "accept_digest": False},
        "simple_dc": {"user_mapping": {"*": {USER: {"password": PASSWORD}}}},
        "verbose": 1,
    }
    (root / "wsgidav.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "wsgidav.server.server_cli", "--config", str(root / "wsgidav.yaml")]
    with open(root / "server.log", "w") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the WebDAV server did not start: {(root / 'server.log').read_text()}")
            time.sleep(0.2)
        yield WebDavServer(f"webdav://127.0.0.1:{port}", folder)
    finally:
        server.terminate()
        server.wait(timeout=10)
