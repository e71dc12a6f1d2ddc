"""Admin API, rights and catalog: ``GET/PUT /admin/rights``, ``PATCH /admin/rights/titles/{content_id}``,
``GET /admin/catalog``.

The rights are the content owner's rules (:mod:`license_server.rights`). A
change is validated as a whole, written to ``<data_dir>/rights.json``
atomically and applies to the next request. The catalog is read-only here
(its keys come from ``keys/``); its view never includes content keys.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from license_server.errors import DrmError, ErrorCode
from license_server.handlers.admin_common import body_model, reply
from license_server.http import KEYRING
from license_server.namespaces import namespace_of
from license_server.rights import Rights, TitleRights


class CatalogTrack(BaseModel):
    track: str
    kid: str


class CatalogTitle(BaseModel):
    content_id: str
    name: str
    tracks: list[CatalogTrack]
    rights: TitleRights = Field(description="The title's rights as they apply now.")


class CatalogView(BaseModel):
    count: int
    titles: list[CatalogTitle]


async def get_rights(request: web.Request) -> web.Response:
    return reply(namespace_of(request).service.rights.current())


async def put_rights(request: web.Request) -> web.Response:
    rights = await body_model(request, Rights)
    _known_titles(request, rights.titles)
    return reply(namespace_of(request).service.rights.replace(rights))


async def patch_title(request: web.Request) -> web.Response:
    """Replace one title's rights, leaving the rest as they are."""
    content_id = request.match_info["content_id"]
    title = await body_model(request, TitleRights)
    _known_titles(request, {content_id: title})
    book = namespace_of(request).service.rights
    current = book.current()
    updated = current.model_copy(update={"titles": {**current.titles, content_id: title}})
    return reply(book.replace(updated))


async def get_catalog(request: web.Request) -> web.Response:
    rights = namespace_of(request).service.rights.current()
    titles = [
        CatalogTitle(content_id=t.content_id, name=t.name, rights=rights.title(t.content_id),
                     tracks=[CatalogTrack(track=e.track.value, kid=e.kid.hex()) for e in t.tracks])
        for t in request.app[KEYRING].catalog.titles.values()
    ]
    return reply(CatalogView(count=len(titles), titles=titles))


def _known_titles(request: web.Request, titles: dict[str, TitleRights]) -> None:
    catalog = request.app[KEYRING].catalog
    unknown = sorted(content_id for content_id in titles if catalog.title(content_id) is None)
    if unknown:
        raise DrmError(ErrorCode.ADMIN_NOT_FOUND, f"not in the catalog: {', '.join(unknown)[:200]}")


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/rights", get_rights, name="admin.rights")
    app.router.add_put("/admin/rights", put_rights, name="admin.rights_put")
    app.router.add_patch("/admin/rights/titles/{content_id}", patch_title, name="admin.rights_title")
    app.router.add_get("/admin/catalog", get_catalog, name="admin.catalog")
