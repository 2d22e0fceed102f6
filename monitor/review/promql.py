"""A small client of Prometheus's HTTP API: instant and range queries, with clear errors.

Only ``/api/v1/query`` and ``/api/v1/query_range`` are used (``urllib``, no
third-party client). A range longer than Prometheus allows in one query
(:data:`MAX_POINTS` points per series) is read in consecutive pieces on the
same step grid, so a week at a one-minute step needs one query per metric.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_POINTS", "PrometheusApi", "PrometheusError", "Series"]

#: Points per series a Prometheus server returns from one range query (its own limit is 11,000).
MAX_POINTS = 10_000


class PrometheusError(Exception):
    """Prometheus could not be read: unreachable, not Prometheus, or the query was refused."""


@dataclass(frozen=True, slots=True)
class Series:
    """One time series of a query's answer: its labels and its (time, value) points.

    Values are floats as Prometheus sends them; ``NaN`` stays NaN (a gauge with no
    value yet), a missing point is simply absent.
    """

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]

    def at(self) -> dict[float, float]:
        """The points as a mapping from time to value."""
        return dict(self.points)


class PrometheusApi:
    """Queries against the Prometheus server at ``url`` (``http(s)://host:port[/prefix]``)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PrometheusError(
                f"{url!r} is not an http(s) URL of a Prometheus server, e.g. http://127.0.0.1:9090"
            )
        if not (timeout > 0 and math.isfinite(timeout)):
            raise PrometheusError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                status, body = int(resp.status), resp.read()
        except urllib.error.HTTPError as err:  # 400/422/503 carry Prometheus's own error JSON
            status, body = err.code, err.read()
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {reason}") from err
        try:
            answer = json.loads(body)
        except ValueError as err:
            raise PrometheusError(
                f"{self.url} answered {path} with HTTP {status} and no JSON: is it Prometheus?"
            ) from err
        if not isinstance(answer, dict) or "status" not in answer:
            raise PrometheusError(
                f"{self.url} answered {path} with HTTP {status} and JSON that is not Prometheus's "
                "API: is it Prometheus?"
            )
        if answer["status"] != "success":
            raise PrometheusError(
                f"Prometheus at {self.url} refused {params.get('query', '')!r}: "
                f"{answer.get('errorType', 'error')}: {answer.get('error', 'no reason given')}"
            )
        return answer.get("data")

    @staticmethod
    def _series(data: Any, kind: str) -> list[dict[str, Any]]:
        if not isinstance(data, dict) or data.get("resultType") != kind:
            raise PrometheusError(f"expected a {kind} result, got {str(data)[:200]}")
        result: list[dict[str, Any]] = data["result"]
        return result

    def instant(self, query: str, at: float) -> list[Series]:
        """The vector ``query`` evaluates to at time ``at`` (epoch seconds)."""
        data = self._get("/api/v1/query", {"query": query, "time": repr(at)})
        return [
            Series(dict(s["metric"]), ((float(s["value"][0]), float(s["value"][1])),))
            for s in self._series(data, "vector")
        ]

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]:
        """``query`` evaluated at ``start``, ``start + step``, ... up to ``end``, per series.

        Pieces of at most :data:`MAX_POINTS` steps are queried one after the other
        on the same grid and joined by label set.
        """
        joined: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        steps = math.floor((end - start) / step + 1e-9) + 1
        for first in range(0, steps, MAX_POINTS):
            last = min(steps, first + MAX_POINTS) - 1
            params = {
                "query": query,
                "start": repr(start + first * step),
                "end": repr(start + last * step),
                "step": repr(step),
            }
            data = self._get("/api/v1/query_range", params)
            for s in self._series(data, "matrix"):
                key = tuple(sorted(s["metric"].items()))
                # Values come as strings ("NaN", "+Inf", or Go's shortest decimal that
                # round-trips the float64), so float() gives back the exact scraped value.
                joined.setdefault(key, []).extend((float(t), float(v)) for t, v in s["values"])
        return [Series(dict(k), tuple(points)) for k, points in sorted(joined.items())]
