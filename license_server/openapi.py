"""The OpenAPI 3.1 document of the admin API and the JSON endpoints, built from
the same pydantic models the handlers validate and serialize with.

:data:`OPERATIONS` is the one table of what is documented; schemas come from
``model_json_schema`` (via :func:`pydantic.json_schema.models_json_schema`), so
a field added to a model shows up in ``/openapi.json`` without being written
twice. Binary dialects (Widevine, FairPlay, PlayReady) are not JSON APIs and
are described in their own docs instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from license_server import __version__
from license_server.admin_models import (
    ClearKeyLicense,
    ClearKeyRequest,
    ClockChange,
    ClockState,
    DeviceDetail,
    DeviceList,
    ErrorBody,
    Fault,
    FaultList,
    FaultsCleared,
    FaultSpec,
    ForceExpire,
    Health,
    LicenseDetail,
    LicenseList,
    LicenseQuery,
    NamespaceCleared,
    NamespaceList,
    Revocation,
    RevocationList,
    RevocationRequest,
)
from license_server.downloads import DownloadAnswer, DownloadRequest
from license_server.errors import ERROR_CODE_HEADER
from license_server.handlers.admin_rights import CatalogView
from license_server.handlers.admin_streams import EndStream, StreamList, StreamQuery, StreamView
from license_server.inspect.schema import InspectDocument, InspectRequest
from license_server.rights import Rights, TitleRights

REF_TEMPLATE = "#/components/schemas/{model}"
SECURITY_SCHEME = "adminBearer"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    response: type[BaseModel]
    status: int = 200
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    admin: bool = True
    description: str = ""

    @property
    def path_params(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{") and part.endswith("}")]


_ADMIN_ERRORS = (401, 403)
OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/admin/licenses", "List licenses (filters combine)", "licenses", LicenseList,
              query=LicenseQuery, errors=(400,)),
    Operation("get", "/admin/licenses/{license_id}", "Show a license: policy, times, state, audit trail",
              "licenses", LicenseDetail, errors=(404,)),
    Operation("post", "/admin/licenses/{license_id}/expire", "Force-expire a license", "licenses", LicenseDetail,
              body=ForceExpire, body_required=False, errors=(400, 404),
              description="A lifecycle transition to expired (idempotent); a released license cannot be expired."),
    Operation("get", "/admin/devices", "List devices with their revocation status", "devices", DeviceList),
    Operation("get", "/admin/devices/{device_id}", "Show a device and its licenses", "devices", DeviceDetail,
              errors=(404,)),
    Operation("get", "/admin/revocations", "List revocation entries", "devices", RevocationList),
    Operation("post", "/admin/revocations", "Revoke a device, a system id or model, or a content key", "devices",
              Revocation, status=201, body=RevocationRequest, errors=(400, 404)),
    Operation("delete", "/admin/revocations/{kind}/{value}", "Un-revoke (kind: device, system_id, model, key_id)",
              "devices", RevocationList, errors=(400, 404)),
    Operation("get", "/admin/faults", "List live faults", "faults", FaultList),
    Operation("post", "/admin/faults", "Inject a fault", "faults", Fault, status=201, body=FaultSpec, errors=(400,)),
    Operation("delete", "/admin/faults", "Clear every fault", "faults", FaultsCleared),
    Operation("delete", "/admin/faults/{fault_id}", "Remove one fault", "faults", FaultsCleared, errors=(404,)),
    Operation("get", "/admin/clock", "Read the server clock (only with --test-clock)", "clock", ClockState),
    Operation("post", "/admin/clock", "Move the server clock (only with --test-clock)", "clock", ClockState,
              body=ClockChange, errors=(400,)),
    Operation("get", "/admin/rights", "Read the content-owner rights and business rules", "rights", Rights),
    Operation("put", "/admin/rights", "Replace the rights (validated, stored as the namespace's overlay)", "rights",
              Rights, body=Rights, errors=(400, 404)),
    Operation("patch", "/admin/rights/titles/{content_id}", "Replace one title's rights", "rights", Rights,
              body=TitleRights, errors=(400, 404)),
    Operation("get", "/admin/streams", "List stream sessions by account, with their leases", "streams",
              StreamList, query=StreamQuery, errors=(400,),
              description="Live sessions hold the account's max_streams slots; ?all=true adds ended ones."),
    Operation("post", "/admin/streams/{session_id}/end", "End a stream session (its next heartbeat: STREAM_EVICTED)",
              "streams", StreamView, body=EndStream, body_required=False, errors=(400, 404)),
    Operation("get", "/admin/catalog", "The catalog (titles, tracks, KIDs; never keys) with each title's rights",
              "rights", CatalogView),
    Operation("post", "/admin/inspect", "Decode a DRM message; for a challenge, what the server would do", "inspect",
              InspectDocument, body=InspectRequest, errors=(400,),
              description="Nothing is recorded. The raw message may also be sent with a non-JSON content type."),
    Operation("get", "/admin/namespaces", "List the namespaces with a few counts", "namespaces", NamespaceList),
    Operation("post", "/admin/namespaces/{name}/reset", "Delete everything stored in a namespace", "namespaces",
              NamespaceCleared, errors=(400, 429),
              description="Licenses, devices, audit, reports, test clock, faults, revocations and rights overlay."),
    Operation("delete", "/admin/namespaces/{name}", "Reset a namespace and stop listing it", "namespaces",
              NamespaceCleared, errors=(400, 404, 409),
              description="The default namespace can be reset, never deleted (NAMESPACE_NOT_DELETABLE)."),
    Operation("get", "/healthz", "Liveness and what the server serves", "service", Health, admin=False),
    Operation("post", "/clearkey/license", "W3C Clear Key license request or release", "clearkey",
              ClearKeyLicense, body=ClearKeyRequest, errors=(400, 403, 404, 413), admin=False),
    Operation("post", "/downloads", "Authorize a media download (presigned file list)", "downloads",
              DownloadAnswer, body=DownloadRequest, errors=(400, 403, 404), admin=False),
)


@cache
def build_document() -> dict[str, Any]:
    """The whole OpenAPI document, built once per process (treat it as read-only)."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for op in OPERATIONS:
        wanted.append((op.response, "serialization"))
        if op.body is not None:
            wanted.append((op.body, "validation"))
    unique = list(dict.fromkeys(wanted))
    refs, defs = models_json_schema(unique, ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DRM license server emulator: admin API and JSON endpoints",
            "version": __version__,
            "description": ("Admin routes need `Authorization: Bearer <admin token>` and a loopback client "
                            "(unless the server runs with --admin-remote). Errors are JSON with a stable code, "
                            f"repeated in the {ERROR_CODE_HEADER} header. See docs/admin-api.md. Every path is "
                            "also served under /ns/<name>/ (or with an X-DRM-Namespace header): see "
                            "docs/namespaces.md."),
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {SECURITY_SCHEME: {"type": "http", "scheme": "bearer",
                                                 "description": "The admin token (--admin-token, or generated at "
                                                                "start into <data_dir>/admin-token)."}},
        },
    }


def _operation(op: Operation, refs: dict) -> dict[str, Any]:
    error_ref = refs[(ErrorBody, "serialization")]
    responses: dict[str, Any] = {str(op.status): {"description": op.summary, "content": {
        "application/json": {"schema": refs[(op.response, "serialization")]}}}}
    for status in sorted(set(op.errors) | (set(_ADMIN_ERRORS) if op.admin else set())):
        responses[str(status)] = {
            "description": "Refused; the stable code is also in the header.",
            "headers": {ERROR_CODE_HEADER: {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": error_ref}},
        }
    doc: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": _operation_id(op),
                           "responses": responses}
    if op.description:
        doc["description"] = op.description
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in op.path_params]
    if op.query is not None:
        schema = op.query.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            parameters.append({"name": name, "in": "query", "required": name in schema.get("required", []),
                               "schema": prop})
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {"required": op.body_required, "content": {
            "application/json": {"schema": refs[(op.body, "validation")]}}}
    if op.admin:
        doc["security"] = [{SECURITY_SCHEME: []}]
    return doc


def _operation_id(op: Operation) -> str:
    words = [w.strip("{}") for w in op.path.strip("/").replace(".", "_").split("/")]
    return op.method + "_" + "_".join(words)
