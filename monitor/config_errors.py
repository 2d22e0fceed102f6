"""What a configuration error says: the field, a did-you-mean, and the fix for its kind."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from monitor.suggest import did_you_mean, enum_suggestion

__all__ = ["ENV_PREFIX", "EXPLAINED", "REMOVED", "ConfigError", "config_fix"]

#: Environment variables that configure ``shiftwatch run`` start with this.
ENV_PREFIX = "SHIFTWATCH_"
#: The error type of a setting removed in a release: its message names the replacement.
REMOVED = "removed_setting"
#: The error type of a check whose message already says how to fix it: nothing is added.
EXPLAINED = "explained"


class ConfigError(ValueError):
    """Configuration that cannot start the service, with each field and its fix."""


def _fix_for(field: str) -> str:
    env = ENV_PREFIX + field.upper().replace(".", "__")
    return f"set `{field}` in the config file, {env} in the environment, or the flag"


_CONFIG_FIXES = {
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a value at or above the limit",
    "less_than": "use a smaller value",
    "less_than_equal": "use a value at or below the limit",
    "literal_error": "use one of the values listed",
    "enum": "use one of the values listed",
    "url_parsing": "write a full URL, e.g. http://alertmanager:9093",
    "url_scheme": "write a full URL, e.g. http://alertmanager:9093",
    "string_too_short": "give a non-empty value",
    "dict_type": "write a mapping of fields (see `shiftwatch run --help`)",
}


def config_fix(error: Any, field: str, settings: type[BaseModel]) -> str:
    """`` (did you mean ...) (fix: ...)`` for one validation error of the settings."""
    kind = error["type"]
    if kind in (REMOVED, EXPLAINED):
        return ""
    if kind == "missing":
        return f" (fix: {_fix_for(field)})"
    if kind == "extra_forbidden":
        *parent, name = [str(p) for p in error["loc"]]
        model: Any = settings
        for part in parent:
            annotation = model.model_fields[part].annotation if part in model.model_fields else None
            model = annotation if isinstance(annotation, type) else None
            if model is None or not issubclass(model, BaseModel):
                model = None
                break
        known = sorted(model.model_fields) if model is not None else []
        hint = did_you_mean(name, known)
        listed = f"; known here: {', '.join(known)}" if known and not hint else ""
        return f"{hint} (fix: remove it or correct its spelling{listed})"
    fix = _CONFIG_FIXES.get(kind)
    hint = enum_suggestion(error)
    if hint:
        return f"{hint} (fix: {fix})"
    fallback = f"set {field} as `shiftwatch run --help` and docs/reliability.md describe"
    return f" (fix: {fix or fallback})"
