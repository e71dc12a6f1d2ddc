"""The key service packagers call (issue 13): one ``setup`` registering every key API.

* :mod:`.keyserver_widevine` — Widevine common-encryption key API (``/widevine/cenc/getcontentkey/<signer>``);
* :mod:`.keyserver_playready` — PlayReady AcquirePackagingData (``/playready/packaging``).
"""

from __future__ import annotations

from aiohttp import web

from license_server.handlers import keyserver_playready, keyserver_widevine


def setup(app: web.Application) -> None:
    keyserver_widevine.setup(app)
    keyserver_playready.setup(app)
