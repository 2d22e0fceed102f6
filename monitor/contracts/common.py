"""What the three contract schemas share: the dialect, the ids, the time pattern, helpers.

The JSON Schema dialect and the base URL of the committed files' ``$id``, the
RFC 3339 pattern :mod:`monitor.events` enforces on times, and the small
helpers every builder uses: adding field descriptions, saying "this field is
set" in JSON Schema, and putting the ``$schema``/``$id``/title header on a
finished schema.

Examples
--------
>>> present("max_distance")["required"]
['max_distance']
>>> header("alert", {"type": "object"}, "T", "D")["$id"].endswith("/docs/schemas/alert.schema.json")
True
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BASE_URL",
    "DIALECT",
    "RFC3339_PATTERN",
    "JsonSchema",
    "describe",
    "header",
    "present",
]

JsonSchema = dict[str, Any]

#: The JSON Schema dialect pydantic generates.
DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Where the committed schemas are published (their ``$id``).
BASE_URL = "https://raw.githubusercontent.com/shiftwatch/shiftwatch/main/docs/schemas/"

#: RFC 3339 date-time with an offset, as :mod:`monitor.events` accepts it: up to 9
#: fractional digits (read to the microsecond), ``T``, ``t`` or a space between date
#: and time, ``Z``, ``z`` or ``+hh:mm``/``-hh:mm``; the date must also exist.
RFC3339_PATTERN = (
    r"^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]"
    r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def describe(definition: JsonSchema, descriptions: dict[str, str]) -> None:
    """Give each property of ``definition`` a description, keeping any the model has."""
    for name, prop in definition.get("properties", {}).items():
        if name in descriptions and "description" not in prop:
            prop["description"] = descriptions[name]


def present(field: str) -> JsonSchema:
    """A schema for: ``field`` is present and not null (the models treat null as absent)."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


def header(name: str, body: JsonSchema, title: str, description: str) -> JsonSchema:
    """``body`` with ``$schema``, ``$id``, title and description."""
    head: JsonSchema = {
        "$schema": DIALECT,
        "$id": f"{BASE_URL}{name}.schema.json",
        "title": title,
        "description": description,
    }
    return {**body, **head}
