"""Pydantic models of the inspector's HTTP request and of its stable JSON document (for OpenAPI)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class InspectRequest(BaseModel):
    """``POST /admin/inspect`` JSON body (or send the raw message with a non-JSON content type)."""

    data: str = Field(description="The message: base64, hex, or its own text (SOAP XML, JSON, a JWT, a URL).")
    encoding: Literal["auto", "base64"] = Field("auto", description="auto: recognise base64, hex or text.")
    dry_run: bool = Field(True, description="For a challenge, also answer what the server would do.")


class GrantedKey(BaseModel):
    track: str
    kid: str
    robustness: str
    hdcp: str


class ServerWould(BaseModel):
    """What the server would answer a challenge, computed without recording anything."""

    outcome: Literal["grant", "refusal", "not_evaluated"]
    code: str | None = Field(description="The stable error code of a refusal.")
    reason: str
    device: dict[str, Any] | None = None
    keys: list[GrantedKey] = Field(description="Tracks and key ids it would grant; key values are never shown.")
    content_id: str | None = None
    kind: str | None = None
    policy: dict[str, Any] | None = None
    not_evaluated: list[str] = Field(default_factory=list, description="Checks that need the store.")


class InspectDocument(BaseModel):
    """The inspector's answer: the same document ``license-server inspect --json`` prints."""

    schema_: int = Field(alias="schema", description="Version of this document's shape (1).")
    recognised: bool
    format: str | None = Field(description="e.g. widevine.license_request, fairplay.spc, playready.xmr, pssh.")
    dialect: str | None
    summary: str = Field(description='One line; "not a recognised DRM message" when nothing matched.')
    input: Literal["raw", "text", "base64", "hex"]
    fields: dict[str, Any] = Field(description="The decoded message with its real field names.")
    notes: list[str]
    server_would: ServerWould | None = None
