"""The service's own small HTTP app: ``/metrics``, ``/livez`` and ``/readyz``, nothing else.

prometheus-client's ``start_http_server`` answers every path with metrics;
this server answers only the documented endpoints and 404 elsewhere.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = ["HttpServer"]

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

    def _json(self, status: int, payload: dict[str, object]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encoder(self.server.registry), content_type)
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
                    "endpoints": ["/metrics", "/livez", "/readyz"],
                },
            )

    do_HEAD = do_GET

    def _not_allowed(self) -> None:
        self._json(405, {"error": f"method {self.command} not allowed"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _not_allowed


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], registry: CollectorRegistry, readiness: Readiness
    ) -> None:
        self.registry = registry
        self.readiness = readiness
        super().__init__(address, _Handler)


class HttpServer:
    """Serves the endpoints on a background thread; ``port`` is the bound port (0 picks one)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._server = _Server((host, port), registry, readiness)
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="shiftwatch-http", daemon=True
        )

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
