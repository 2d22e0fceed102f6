"""How a policy's problems are told: each with its field path, line and column, and a fix.

:class:`PolicyError` carries (field, message, fix) triples; :func:`problems`
turns a pydantic ``ValidationError`` into them, with a did-you-mean for a
misspelt value or field and the YAML position of each field
(:func:`yaml_marks`). A validator states its fix with :func:`invalid`.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.suggest import did_you_mean, enum_suggestion

__all__ = [
    "FIXES",
    "Marks",
    "PolicyError",
    "field_path",
    "invalid",
    "location",
    "problems",
    "suggestion",
    "yaml_marks",
]


#: Separates a validator's message from its fix (see :func:`invalid`).
FIX = " (fix: "


def invalid(message: str, fix: str) -> ValueError:
    """A validation error with its fix; ``message`` may start with the field it concerns,
    ``"where.privileged: ..."``, which then joins the field path."""
    return ValueError(f"{message}{FIX}{fix})")


FIXES: dict[str, str] = {
    "missing": "add this field",
    "extra_forbidden": (
        "remove it, or check its spelling against docs/policy.md or `shiftwatch schema policy`"
    ),
    "literal_error": "use one of the values listed",
    "enum": "use one of the values listed",
    "greater_than": "use a positive number",
    "greater_than_equal": "raise the value",
    "less_than_equal": "lower the value",
    "string_pattern_mismatch": "use letters, digits and . _ : / - only",
    "too_short": "add at least one entry",
}


class PolicyError(ValueError):
    """A policy that cannot be used; ``problems`` holds (field, message, fix) triples.

    ``locations`` holds, per problem, where the field is in the file (``line 7,
    column 12``), or ``""`` where that is not known.
    """

    def __init__(
        self,
        source: str,
        problems: list[tuple[str, str, str]],
        locations: list[str] | None = None,
    ) -> None:
        self.source = source
        self.problems = problems
        self.locations = locations or [""] * len(problems)
        lines = [f"{source}: {len(problems)} problem(s)"]
        for (field, msg, fix), at in zip(problems, self.locations, strict=True):
            where = f" ({at})" if at else ""
            lines.append(f"  {field}{where}: {msg}" + (f" (fix: {fix})" if fix else ""))
        super().__init__("\n".join(lines))


def field_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """Render a pydantic location naming list items, e.g. ``models[fraud].checks[fn].metric``."""
    path = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = item.get("name") if isinstance(item, dict) else None
            path += f"[{label or part}]"
            node = item
        else:
            path += f".{part}" if path else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return path or "(file)"


Marks = dict[tuple[int | str | None, ...], tuple[int, int]]


def yaml_marks(text: str) -> Marks:
    """Line and column (1-based) of every mapping value and list item in a YAML text."""
    marks: Marks = {}

    def walk(node: yaml.Node, path: tuple[int | str | None, ...]) -> None:
        marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    walk(value, (*path, key.value))
                    # The key itself, under a None: where an unknown key is reported.
                    key_at = (key.start_mark.line + 1, key.start_mark.column + 1)
                    marks[(*path, key.value, None)] = key_at
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return marks
    if root is not None:
        walk(root, ())
    return marks


def location(loc: tuple[int | str | None, ...], marks: Marks) -> str:
    """``line L, column C`` of the longest prefix of ``loc`` the YAML text has, or ``""``."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in marks:
            line, col = marks[loc[:end]]
            return f"line {line}, column {col}"
    return ""


def suggestion(error: Any, field_names: set[str]) -> str:
    """A did-you-mean for a misspelt value or field name (one of ``field_names``), or ``""``."""
    if error["type"] in ("enum", "literal_error"):
        return enum_suggestion(error)
    if error["type"] == "extra_forbidden" and error["loc"]:
        return did_you_mean(str(error["loc"][-1]), field_names)
    return ""


def problems(
    err: ValidationError, raw: Any, marks: Marks, field_names: set[str]
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """The (field, message, fix) triples of a validation error, and where each field is."""
    found, locations = [], []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        msg = e["msg"].removeprefix("Value error, ") + suggestion(e, field_names)
        fix = FIXES.get(e["type"], "")
        if FIX in msg and msg.endswith(")"):
            msg, fix = msg[:-1].split(FIX, 1)
        field = field_path(loc, raw)
        head = re.match(r"^([a-z_]+(\.[A-Za-z0-9_]+)?): ", msg)
        if head and e["type"] == "value_error":  # "where.privileged: ...": a sub-field
            sub = head.group(1)
            field = f"{field}.{sub}" if field != "(file)" else sub
            msg = msg[head.end() :]
            loc = (*loc, *sub.split("."))
        found.append((field, msg, fix))
        key = (None,) if e["type"] == "extra_forbidden" else ()
        locations.append(location((*loc, *key), marks))
    return found, locations
