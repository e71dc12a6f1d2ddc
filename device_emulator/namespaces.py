"""``--namespace NAME``: talk to one namespace of a shared license server (``/ns/<name>/...``).

The option rewrites the command's ``--server`` base URL to ``<server>/ns/<name>``, so every
request the command sends (licenses, renewals, releases, downloads, admin calls) stays in that
namespace. URLs the server hands out (presigned media) are origin-absolute and already carry the
prefix: :func:`resolve` joins them. ``DRM_NAMESPACE`` in the environment is the default.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

ENV = "DRM_NAMESPACE"
PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")  # the server's rule (license_server.store_api)
PREFIXED_MEDIA = re.compile(r"^(?:/ns/[a-z0-9-]{1,40})?/media/")
F = TypeVar("F", bound=Callable[..., Any])


def in_namespace(server: str, namespace: str | None) -> str:
    """The base URL of ``namespace`` on ``server`` (``server`` itself for none or ``default``)."""
    if not namespace or namespace == "default":
        return server
    if not PATTERN.match(namespace):
        raise click.BadParameter("use 1-40 lower-case letters, digits and inner hyphens", param_hint="--namespace")
    return f"{server.rstrip('/')}/ns/{namespace}"


def resolve(server: str, url: str) -> str:
    """An absolute URL for a path the server handed out, whether or not ``server`` carries ``/ns/<name>``."""
    parts = urlsplit(server)
    prefix = parts.path.rstrip("/")
    if prefix and url.startswith(prefix + "/"):
        return f"{parts.scheme}://{parts.netloc}{url}"
    return server.rstrip("/") + url


def namespace_option(command: F) -> F:
    """Add ``--namespace`` to a command that takes ``--server`` (place it right under ``@main.command()``)."""

    @click.option("--namespace", default=None, envvar=ENV, show_envvar=True,
                  help="Namespace on a shared server: requests go to SERVER/ns/NAMESPACE/ (docs/namespaces.md).")
    @functools.wraps(command)
    def wrapper(*args: Any, namespace: str | None = None, **kwargs: Any) -> Any:
        if kwargs.get("server"):
            kwargs["server"] = in_namespace(kwargs["server"], namespace)
        return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
