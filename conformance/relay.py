"""A loopback TCP relay to the target that a check can switch off: a network outage on demand.

A device that acquired its license through the relay keeps the relay's URL as
its license server; while the relay is *down*, every connection is accepted
and closed at once (the device sees a dropped connection), and nothing reaches
the target.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from urllib.parse import urlsplit


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        relay: Relay = self.server.relay  # type: ignore[attr-defined]
        if relay.down:
            return  # accepted and closed: a dropped connection
        try:
            upstream = socket.create_connection(relay.upstream, timeout=30)
        except OSError:
            return
        with upstream:
            pump = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
            pump.start()
            _copy(self.request, upstream)
            pump.join(30)


def _copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Relay:
    """``with Relay(target_url) as relay:`` -- ``relay.url`` forwards to the target until ``relay.down = True``."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.down = False
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.relay = self  # type: ignore[attr-defined]
        # the target's path stays (a namespace's /ns/<name>): the device must reach the same namespace
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{parts.path.rstrip('/')}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
