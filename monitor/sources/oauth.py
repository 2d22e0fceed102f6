"""OAUTHBEARER for Kafka: the bearer token read from a file at each authentication."""

from __future__ import annotations

from pathlib import Path

from kafka.net.sasl.oauth import AbstractTokenProvider

__all__ = ["FileTokenProvider"]


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """Reads the token from ``path`` each time the client authenticates.

    A token rotated in place (a projected Kubernetes service-account token, a
    sidecar that refreshes it) is picked up at the next connection, without a
    restart. The token is never logged.

    >>> import tempfile, os
    >>> with tempfile.NamedTemporaryFile("w", delete=False) as f:
    ...     _ = f.write("eyJhbGciOi.token\\n")
    >>> FileTokenProvider(f.name).token()
    'eyJhbGciOi.token'
    >>> os.unlink(f.name)
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def token(self) -> str:
        text = self.path.read_text(encoding="utf-8").strip()
        if not text:
            raise ValueError(f"the OAUTHBEARER token file {self.path} is empty")
        return text

    def __repr__(self) -> str:
        return f"FileTokenProvider({str(self.path)!r})"
