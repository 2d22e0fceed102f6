"""The service's own small HTTP app: metrics, probes, and the verdict for rollout controllers.

- ``GET /metrics``, ``/livez``, ``/readyz``.
- ``GET /verdict?model=M&version=V``: the JSON verdict of :mod:`monitor.verdict`
  (``pass``/``fail``/``inconclusive`` with the reasons), always HTTP 200 when
  the version is known, for Argo Rollouts' web provider: ``jsonPath:
  "{$.verdict}"``, ``successCondition: result == "pass"``,
  ``failureCondition: result == "fail"``; neither holds while inconclusive,
  so the measurement is Inconclusive and the rollout pauses instead of
  rolling back. An unknown model or version is 404 (an Error measurement).
- ``POST /flagger/rollback`` and ``POST /flagger/promote``: Flagger webhooks,
  given ``metadata: {model, version}``. Flagger rolls back when a ``rollback``
  hook answers 2xx, so ``/flagger/rollback`` answers 200 only on ``fail``;
  it holds promotion until a ``confirm-promotion`` hook answers 2xx, so
  ``/flagger/promote`` answers 200 only on ``pass``. Otherwise 412, with the
  verdict as the body, which Flagger shows in its events.

prometheus-client's ``start_http_server`` answers every path with metrics;
this server answers only the documented endpoints and 404 elsewhere.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from monitor.verdict import VerdictBoard

__all__ = ["HttpBindError", "HttpServer"]

#: Returns (ready, reason).
Readiness = Callable[[], tuple[bool, str]]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return None  # access logs would be one line per scrape; metrics cover it

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _verdict(self, model: str | None, version: str | None) -> dict[str, Any] | None:
        """The verdict, or None after answering 400/404 (no board, missing or unknown names)."""
        board = self.server.verdicts
        if board is None and self.server.verdicts_pending:
            self._json(503, {"error": "starting: not connected to Kafka yet, no verdict so far"})
            return None
        if board is None:
            self._json(404, {"error": "this server has no verdicts"})
            return None
        if not model or not version:
            self._json(400, {"error": "give both model and version, e.g. ?model=M&version=V"})
            return None
        verdict = board.get(model, version)
        if verdict is None:
            known = [f"{m}@{v}" for m, v in board.known()]
            error = f"no candidate {version!r} of model {model!r} is watched"
            self._json(404, {"error": error, "known": known})
        return verdict

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encoder(self.server.registry), content_type)
        elif path == "/verdict":
            params = parse_qs(query)
            verdict = self._verdict(
                params.get("model", [None])[0], params.get("version", [None])[0]
            )
            if verdict is not None:
                self._json(200, verdict)
        elif path == "/livez":
            self._json(200, {"status": "ok"})
        elif path == "/readyz":
            try:
                ready, reason = self.server.readiness()
            except Exception as exc:  # a probe must answer, whatever broke
                ready, reason = False, f"readiness check failed: {type(exc).__name__}"
            self._json(
                200 if ready else 503,
                {"status": "ready" if ready else "not ready", "reason": reason},
            )
        else:
            self._json(
                404,
                {
                    "error": f"no such endpoint {path!r}",
                    "endpoints": [
                        "/metrics",
                        "/livez",
                        "/readyz",
                        "/verdict",
                        "/flagger/rollback",
                        "/flagger/promote",
                    ],
                },
            )

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = self.path.partition("?")[0]
        wanted = {"/flagger/rollback": "fail", "/flagger/promote": "pass"}.get(path)
        if wanted is None:
            self._not_allowed()
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1 << 20:
            self._json(413, {"error": "webhook payload larger than 1 MiB"})
            return
        try:
            payload = json.loads(self.rfile.read(length) or b"{}")
            metadata = payload.get("metadata") or {}
            model, version = metadata.get("model"), metadata.get("version")
        except (ValueError, AttributeError):
            self._json(400, {"error": "expected Flagger's JSON webhook payload"})
            return
        verdict = self._verdict(model, version)
        if verdict is None:
            return
        self._json(200 if verdict["verdict"] == wanted else 412, verdict)

    def _not_allowed(self) -> None:
        self._json(405, {"error": f"method {self.command} not allowed on {self.path}"})

    do_PUT = do_DELETE = do_PATCH = _not_allowed


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        readiness: Readiness,
        verdicts: VerdictBoard | None,
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        self.verdicts = verdicts
        #: Verdicts come once the service has connected (``shiftwatch run``): 503 until then.
        self.verdicts_pending = False
        super().__init__(address, _Handler)


class HttpBindError(OSError):
    """The HTTP port cannot be listened on: one line naming the address, the cause and the fix."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        super().__init__(
            f"cannot listen on {host}:{port}: {reason} (fix: choose another port with "
            "--http-port (demo: --metrics-port), or stop the process that holds it)"
        )


class HttpServer:
    """Serves the endpoints on a background thread; ``port`` is the bound port (0 picks one)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        host: str = "127.0.0.1",
        port: int = 0,
        verdicts: VerdictBoard | None = None,
    ) -> None:
        try:
            self._server = _Server((host, port), registry, readiness, verdicts)
        except OSError as exc:
            raise HttpBindError(host, port, exc) from None
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="shiftwatch-http", daemon=True
        )

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def expect_verdicts(self) -> None:
        """Answer ``/verdict`` with 503 (starting) until :meth:`attach_verdicts`."""
        self._server.verdicts_pending = True

    def attach_verdicts(self, verdicts: VerdictBoard) -> None:
        """Serve ``verdicts`` from now on (the service has connected)."""
        self._server.verdicts = verdicts

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
