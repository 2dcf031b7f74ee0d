"""The embedded S3-compatible server: moto in server mode on 127.0.0.1.

It is a real HTTP endpoint, so the pipeline talks to it exactly as to AWS or MinIO. It keeps objects
in memory only: a restarted server is empty. That is safe by design: objects that vanish become
``missing`` in the catalog, nothing is dropped or purged because of it. The demo re-seeds it.
"""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from media_pipeline.errors import (
    EmbeddedServerUnavailable,  # noqa: F401
    InvalidInput,
)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` can be listened on (the way the server will bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(url: str, timeout: float = 1.0) -> bool:
    """True when something answers HTTP at ``url`` (any status counts)."""
    try:
        urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - loopback URL we built
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False
    return True


@dataclass
class EmbeddedS3:
    server: Any  # moto.server.ThreadedMotoServer
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.stop()


def start_embedded_s3(host: str = "127.0.0.1", port: int = 0) -> EmbeddedS3:
    """Start moto's server in a background thread; ``port=0`` picks a free port."""
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise InvalidInput("the embedded S3 server only listens on the loopback interface")
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise EmbeddedServerUnavailable(
            "the embedded S3 server needs moto: pip install 'media-pipeline[embedded]'"
        ) from None
    port = port or free_port(host)
    # moto's start() waits forever when its thread cannot bind: find out first.
    if not port_free(host, port):
        raise EmbeddedServerUnavailable(
            f"port {port} on {host} is taken by another program: stop it, or choose another "
            "port (--port)")
    # werkzeug logs every request at INFO; keep the terminal readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    return EmbeddedS3(server=server, host=host, port=port)
