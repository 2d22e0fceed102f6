"""JSON Schemas of the three contracts: the policy file, an event, an alert record.

:func:`schema` builds each from the pydantic models that validate it
(:class:`~monitor.policy.Policy`, the event kinds of :mod:`monitor.events`,
:class:`~monitor.alerts.AlertRecord`), adds a description to every field, and
states in JSON Schema what the models check in code where JSON Schema can say
it: which ``where`` fields and which tolerance each metric takes, and the
CloudEvents envelope. The generated files are committed in ``docs/schemas/``;
``python -m monitor.schemas`` writes them again after a model changes, and
``shiftwatch schema NAME`` prints one.

Each schema has its builder module in :mod:`monitor.contracts`
(:mod:`~monitor.contracts.policy`, :mod:`~monitor.contracts.event`,
:mod:`~monitor.contracts.alert`, with the shared dialect, ids and helpers in
:mod:`~monitor.contracts.common`); this module names them, renders them as
committed and is the entry point of ``python -m monitor.schemas``.

Examples
--------
>>> schema("policy")["title"]
'shiftwatch policy file'
>>> schema("event")["$defs"]["InferenceEvent"]["properties"]["score"]["anyOf"][0]["maximum"]
1.0
>>> schema("alert")["properties"]["status"]["enum"]
['firing', 'resolved']
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from monitor.contracts.alert import alert_schema
from monitor.contracts.common import BASE_URL as BASE_URL
from monitor.contracts.common import DIALECT, JsonSchema
from monitor.contracts.common import RFC3339_PATTERN as RFC3339_PATTERN
from monitor.contracts.event import event_schema
from monitor.contracts.policy import policy_schema

__all__ = ["DIALECT", "SCHEMA_NAMES", "main", "render", "schema", "write_all"]

log = structlog.get_logger("shiftwatch.schemas")

#: The contracts with a schema, in the order ``shiftwatch schema`` lists them.
SCHEMA_NAMES: tuple[str, ...] = ("policy", "event", "alert")
#: Where ``python -m monitor.schemas`` writes, relative to the working directory.
DEFAULT_DIR = Path("docs/schemas")


_BUILDERS: dict[str, Callable[[], JsonSchema]] = {
    "policy": policy_schema,
    "event": event_schema,
    "alert": alert_schema,
}


def schema(name: str) -> JsonSchema:
    """The JSON Schema of one contract.

    Parameters
    ----------
    name
        ``policy``, ``event`` or ``alert``.

    Returns
    -------
    dict
        A JSON Schema (draft 2020-12), built afresh from the models.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`SCHEMA_NAMES`.
    """
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"no schema {name!r}: choose one of {', '.join(SCHEMA_NAMES)}")
    return builder()


def render(name: str) -> str:
    """The schema ``name`` as committed: indented, keys sorted, ending with a newline.

    >>> render("alert").endswith("}\\n")
    True
    """
    return json.dumps(schema(name), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(directory: str | Path = DEFAULT_DIR) -> list[Path]:
    """Write ``<name>.schema.json`` for every contract into ``directory``; return the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SCHEMA_NAMES:
        path = out / f"{name}.schema.json"
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m monitor.schemas [DIR]``: regenerate the committed schemas."""
    from monitor.logging import configure_logging

    parser = argparse.ArgumentParser(
        prog="python -m monitor.schemas",
        description="Write the JSON Schemas of the policy, event and alert contracts.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        default=str(DEFAULT_DIR),
        help=f"where to write them (default: {DEFAULT_DIR}, from the repository's root)",
    )
    args = parser.parse_args(argv)
    configure_logging("info")
    for path in write_all(args.directory):
        log.info("schema written", path=str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
