"""The key service packagers call (issue 13): one ``setup`` registering every key API.

* :mod:`.keyserver_widevine` — Widevine common-encryption key API (``/widevine/cenc/getcontentkey/<signer>``);
* :mod:`.keyserver_playready` — PlayReady AcquirePackagingData (``/playready/packaging``);
* :mod:`.keyserver_cpix` — CPIX 2.3 / SPEKE v2.0 (``POST /cpix``, ``GET /cpix/<content_id>``).
"""

from __future__ import annotations

from aiohttp import web

from license_server.handlers import (
    keyserver_cpix,
    keyserver_playready,
    keyserver_widevine,
)


def setup(app: web.Application) -> None:
    keyserver_widevine.setup(app)
    keyserver_playready.setup(app)
    keyserver_cpix.setup(app)
