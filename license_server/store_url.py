"""``--store URL``: which backend holds the state, and how to print its URL without a password.

* ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's convention): the
  embedded store in that file;
* ``postgresql://USER@HOST[:PORT]/DB`` (or ``postgres://``, with any libpq query parameters): the
  shared store, one schema per namespace (:mod:`license_server.store_pg`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class StoreLocation:
    kind: str  # "sqlite" or "postgresql"
    path: Path | None = None
    url: str | None = None

    @property
    def shown(self) -> str:
        """For logs and messages: the path, or the URL without its password."""
        return str(self.path) if self.path is not None else redact(self.url or "")


def parse_store_url(url: str) -> StoreLocation:
    """The store a ``--store`` URL names; ``ValueError`` with a one-line reason otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
            raise ValueError("use sqlite:///relative/file.db or sqlite:////absolute/file.db")
        return StoreLocation("sqlite", path=Path(parts.path[1:]))
    if parts.scheme in POSTGRES_SCHEMES:
        if not parts.path.strip("/"):
            raise ValueError("name the database: postgresql://USER@HOST[:PORT]/DB")
        try:
            parts.port  # noqa: B018  (validates the port)
        except ValueError:
            raise ValueError("the port is not a number in 1-65535") from None
        return StoreLocation("postgresql", url=url)
    raise ValueError("the store URL must start with sqlite:/// or postgresql:// (postgres://)")


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
