"""Start-up checks of ``license-server serve``, run before anything is written.

A ``serve`` that cannot start must leave the files of a server that may be
running (``DATA_DIR/admin-token``, the store) alone and say why in one line.
Each check raises :class:`StartupError` with that line.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from license_server.keyring import Keyring
from license_server.settings import Settings


class StartupError(Exception):
    """The server cannot start; the message is the one line shown to the user."""


def check_port(host: str, port: int) -> None:
    """The port is in range and nothing listens on it (probed by binding, then released)."""
    if not 0 <= port <= 65535:
        raise StartupError(f"port {port} is out of range (0-65535; 0 picks a free one)")
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"port {port} on {host} is already in use (is another server running? "
                                   "pick another --port)") from None
            raise StartupError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None


def check_data_dir(path: Path) -> None:
    """The data directory exists (created if missing) and is a directory."""
    if path.exists() and not path.is_dir():
        raise StartupError(f"--data-dir {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create the data directory {path}: {exc.strerror or exc}") from None


def check_token_keys(settings: Settings, keyring: Keyring) -> None:
    """The entitlement-token JWK set, when present, is a readable JSON JWK set."""
    from license_server.app import token_verifier

    path = settings.token_jwks or keyring.token_jwks_path
    try:
        token_verifier(settings, keyring)
    except FileNotFoundError as exc:
        raise StartupError(str(exc)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StartupError(f"the token JWK set {path} is not a readable JSON JWK set: "
                           f"{type(exc).__name__}: {str(exc)[:120]}") from None
