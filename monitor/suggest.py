"""Did-you-mean for a misspelt name or value, shared by every error a user can read."""

from __future__ import annotations

import difflib
import re
from typing import Any

__all__ = ["did_you_mean", "enum_suggestion"]


def did_you_mean(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def enum_suggestion(error: Any) -> str:
    """For a pydantic ``enum``/``literal_error`` on a string: the closest allowed value."""
    if error["type"] not in ("enum", "literal_error") or not isinstance(error.get("input"), str):
        return ""
    expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
    return did_you_mean(error["input"], expected)
