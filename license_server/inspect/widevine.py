"""Widevine-style SignedMessage: request, license, error, service certificate (and its request)."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError, Message

from license_server.errors import DrmError
from license_server.inspect.model import Context, Decoded, NotMine
from license_server.inspect.protobuf_view import view
from license_server.protocols.widevine import codec
from license_server.protocols.widevine import license_protocol_pb2 as pb

MessageType = pb.SignedMessage.MessageType


def _parse(kind: type[Message], data: bytes) -> Any:
    try:
        return kind.FromString(data)
    except (DecodeError, RuntimeWarning, ValueError) as exc:
        raise NotMine(f"does not parse as {kind.__name__}") from exc


def certificate_chain(data: bytes) -> list[dict[str, Any]]:
    """A SignedDrmCertificate chain, leaf first, each DrmCertificate by field name."""
    links: list[dict[str, Any]] = []
    node = _parse(pb.SignedDrmCertificate, data)
    while len(links) < 4:
        cert = _parse(pb.DrmCertificate, node.drm_certificate)
        links.append({**view(cert), "signature_bytes": len(node.signature)})
        if not node.HasField("signer"):
            break
        node = node.signer
    return links


def decode(data: bytes, context: Context) -> Decoded:
    """Decode a SignedMessage; raise NotMine for anything else."""
    if data == codec.SERVICE_CERTIFICATE_REQUEST:
        return Decoded("widevine.service_certificate_request", "Widevine-style service certificate request (08 04)",
                       {"type": "SERVICE_CERTIFICATE_REQUEST"}, dialect="widevine")
    signed = _parse(pb.SignedMessage, data)
    if not signed.HasField("type") or signed.type not in MessageType.values():
        raise NotMine("no SignedMessage type")
    fields = view(signed)
    kind = MessageType.Name(signed.type)
    if signed.type == MessageType.LICENSE_REQUEST:
        return _request(data, signed, fields, context)
    if signed.type == MessageType.LICENSE:
        lic = _parse(pb.License, signed.msg)
        fields["msg"] = {"License": view(lic)}
        keys = len(lic.key)
        return Decoded("widevine.license", f"Widevine-style LICENSE {lic.id.session_id.hex()} "
                       f"(version {lic.id.version}, {keys} key{'s' * (keys != 1)})", fields, dialect="widevine",
                       notes=["content keys are AES-CBC encrypted to the session; their values are never shown"])
    if signed.type == MessageType.ERROR_RESPONSE:
        err = _parse(pb.LicenseError, signed.msg)
        fields["msg"] = {"LicenseError": view(err)}
        code = err.emulator_error_code or (pb.LicenseError.Error.Name(err.error_code)
                                           if err.HasField("error_code") else "UNKNOWN")
        return Decoded("widevine.error", f"Widevine-style ERROR_RESPONSE {code}", fields, dialect="widevine")
    if signed.type == MessageType.SERVICE_CERTIFICATE:
        fields["msg"] = {"SignedDrmCertificate": certificate_chain(signed.msg)}
        return Decoded("widevine.service_certificate", "Widevine-style SERVICE_CERTIFICATE", fields,
                       dialect="widevine")
    return Decoded(f"widevine.{kind.lower()}", f"Widevine-style {kind}", fields, dialect="widevine")


def _request(data: bytes, signed: Any, fields: dict[str, Any], context: Context) -> Decoded:
    request = _parse(pb.LicenseRequest, signed.msg)
    body = view(request)
    notes: list[str] = []
    client = request.client_id if request.HasField("client_id") else None
    if client is None and request.HasField("encrypted_client_id") and context.service_key_pem:
        try:
            plain = codec._client_identification(request, context.service_key_pem)
            client = plain
            body["encrypted_client_id"]["decrypted"] = view(plain)
            notes.append("privacy mode: the client id was decrypted with the service key")
        except DrmError as exc:
            notes.append(f"privacy mode: {exc.message}")
    if client is not None and client.token:
        target = body["encrypted_client_id"]["decrypted"] if "client_id" not in body else body["client_id"]
        try:
            target["token_chain"] = certificate_chain(client.token)
        except NotMine:
            notes.append("the client token is not a DRM certificate chain")
    content = request.content_id
    if content.WhichOneof("content_id_variant") == "widevine_pssh_data":
        pssh = body["content_id"]["widevine_pssh_data"]
        pssh["pssh_data_decoded"] = [view(_parse(pb.WidevinePsshData, p)) for p in content.widevine_pssh_data.pssh_data]
    fields["msg"] = {"LicenseRequest": body}
    kind = pb.LicenseRequest.RequestType.Name(request.type) if request.HasField("type") else "?"
    decoded = Decoded("widevine.license_request", f"Widevine-style LICENSE_REQUEST ({kind})", fields,
                      dialect="widevine", notes=notes)
    try:
        parsed = codec.parse_license_request(data, service_key_pem=context.service_key_pem or b"")
        decoded.challenge, decoded.extra = parsed.challenge, parsed
    except DrmError as exc:
        decoded.notes.append(f"the server would refuse it as {exc.code.value}: {exc.message}")
    return decoded
