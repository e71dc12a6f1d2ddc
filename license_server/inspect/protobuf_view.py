"""Protobuf messages as plain dicts with their real field names; secrets redacted."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

# (message full name suffix, field name): bytes never shown, only their size.
REDACTED = {
    ("KeyContainer", "key"), ("SignedMessage", "session_key"),
    ("EncryptedClientIdentification", "encrypted_privacy_key"),
    ("EncryptedClientIdentification", "encrypted_client_id"),
    ("KeyControl", "key_control_block"),
}
# Fields whose bytes are nested messages we expand, or long public values kept short.
SHORTENED = {"public_key", "signature", "token", "drm_certificate", "msg", "vmp_data"}


def view(message: Message) -> dict[str, Any]:
    """Every set field of ``message`` by name: enums as names, bytes as hex."""
    out: dict[str, Any] = {}
    for descriptor, value in message.ListFields():
        if descriptor.is_repeated:
            out[descriptor.name] = [_value(message, descriptor, item) for item in value]
        else:
            out[descriptor.name] = _value(message, descriptor, value)
    return out


def _value(message: Message, descriptor: FieldDescriptor, value: Any) -> Any:
    if descriptor.type == FieldDescriptor.TYPE_MESSAGE:
        return view(value)
    if descriptor.type == FieldDescriptor.TYPE_ENUM:
        enum = descriptor.enum_type.values_by_number.get(value) if descriptor.enum_type else None
        return enum.name if enum is not None else value
    if descriptor.type == FieldDescriptor.TYPE_BYTES:
        owner = message.DESCRIPTOR.name
        if (owner, descriptor.name) in REDACTED:
            return f"<{len(value)} bytes, not shown>"
        if descriptor.name == "content_id" and value.isascii() and value.decode().isprintable():
            return value.decode()
        if descriptor.name in SHORTENED and len(value) > 32:
            return f"{value[:16].hex()}... ({len(value)} bytes)"
        return value.hex()
    return value
