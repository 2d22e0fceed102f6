"""Reading a running monitor's ``/verdict`` (for ``shiftwatch policy check --monitor``).

:func:`baseline_warnings` asks the monitor for the verdict of every candidate
of every model in a policy and returns one warning line per model whose
baseline drifts (``baseline_drift.detected``): its candidates are judged
against a moving baseline. A model whose policy lists no candidates is asked
for its baseline version; the monitor's 404 answer lists the versions it
watches, which are then asked in turn.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from monitor.policy import ModelPolicy, Policy

__all__ = ["MonitorUnreachable", "baseline_warnings", "fetch_verdict"]

#: Seconds to wait for the monitor's answer.
TIMEOUT_SECONDS = 5.0


class MonitorUnreachable(Exception):
    """The monitor could not be read: not listening, not shiftwatch, or too slow."""


def fetch_verdict(
    base_url: str, model: str, version: str, timeout: float = TIMEOUT_SECONDS
) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body of ``GET {base_url}/verdict?model=&version=``."""
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise MonitorUnreachable(f"{base_url!r} is not an http(s) URL, e.g. http://127.0.0.1:9464")
    query = urllib.parse.urlencode({"model": model, "version": version})
    url = f"{base_url.rstrip('/')}/verdict?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status, body = int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise MonitorUnreachable(f"cannot read {url}: {reason}") from err
    try:
        payload = json.loads(body)
    except ValueError as err:
        raise MonitorUnreachable(f"{url} answered {status} without JSON") from err
    if not isinstance(payload, dict):
        raise MonitorUnreachable(f"{url} answered {status} with JSON that is not an object")
    return status, payload


def _verdicts(base_url: str, model: ModelPolicy, timeout: float) -> list[dict[str, Any]]:
    versions = list(model.candidates or ())
    if not versions:
        _, answer = fetch_verdict(base_url, model.name, model.baseline, timeout)
        known = answer.get("known", [])
        versions = [k.split("@", 1)[1] for k in known if str(k).startswith(f"{model.name}@")]
    verdicts = []
    for version in versions:
        status, verdict = fetch_verdict(base_url, model.name, version, timeout)
        if status == 200:
            verdicts.append(verdict)
    return verdicts


def baseline_warnings(base_url: str, policy: Policy, timeout: float = TIMEOUT_SECONDS) -> list[str]:
    """One line per model of ``policy`` whose baseline the monitor sees drifting.

    Raises
    ------
    MonitorUnreachable
        If the monitor cannot be read.
    """
    lines = []
    for model in policy.models:
        for verdict in _verdicts(base_url, model, timeout):
            drift = verdict.get("baseline_drift") or {}
            if drift.get("detected"):
                checks = ", ".join(drift.get("checks", []))
                lines.append(
                    f"warning: model {model.name}: the baseline {model.baseline} itself drifted "
                    f"since {drift.get('since')} ({checks}); candidate {verdict.get('version')} "
                    "is judged against a moving baseline"
                )
    return lines
