"""The key service packagers call (issue 13): one ``setup`` registering every key API.

* :mod:`.keyserver_widevine` — Widevine common-encryption key API (``/widevine/cenc/getcontentkey/<signer>``).
"""

from __future__ import annotations

from aiohttp import web

from license_server.handlers import keyserver_widevine


def setup(app: web.Application) -> None:
    keyserver_widevine.setup(app)
