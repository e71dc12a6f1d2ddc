"""Small helpers turning typed values (dataclasses, enums, bytes) into JSON-friendly ones."""

from __future__ import annotations

import dataclasses
from enum import Enum, Flag
from typing import Any


def plain(value: Any) -> Any:
    """Dataclasses and pydantic models as dicts, enums by name, bytes as hex, tuples as lists (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if hasattr(value, "model_dump"):  # a pydantic model: its JSON form (enums as values)
        return value.model_dump(mode="json")
    if isinstance(value, Flag):
        return [m.name for m in type(value) if m in value and m.value] or []
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value
